"""Helpers for the SIF tests and benchmark: an HTTP server with real Range support that counts
the bytes it sends and can be cut off, and SIF images padded with data no command reads."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class _Handler(BaseHTTPRequestHandler):
    server: RangeServer.Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _file(self) -> Path | None:
        name = self.path.split("?", 1)[0].lstrip("/")
        if not name or ".." in name.split("/"):
            return None
        path = self.server.root / name
        return path if path.is_file() else None

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        owner = self.server.owner
        if owner.down.is_set():
            self.close_connection = True
            self.connection.close()
            return
        path = self._file()
        if path is None:
            self.send_error(404)
            return
        size = path.stat().st_size
        start, end = 0, size - 1
        header = self.headers.get("Range")
        if header:
            match = _RANGE.match(header.strip())
            if not match:
                self.send_error(416)
                return
            first, last = match.groups()
            if first:
                start = int(first)
                end = min(int(last), size - 1) if last else size - 1
            else:
                start = max(0, size - int(last))
            if start > end:
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Last-Modified", self.date_time_string(int(path.stat().st_mtime)))
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        if not body:
            return
        if owner.stall.is_set():  # headers sent, then nothing: a server that stopped mid-transfer
            self.wfile.flush()
            owner.resume.wait(timeout=60)
            self.connection.close()
            return
        with path.open("rb") as handle:
            handle.seek(start)
            left = end - start + 1
            while left > 0:
                if owner.down.is_set():
                    self.connection.close()
                    return
                chunk = handle.read(min(left, 1 << 16))
                if not chunk:
                    break
                try:
                    self.wfile.write(chunk)
                except OSError:
                    return
                left -= len(chunk)
                with owner.lock:
                    owner.bytes_sent += len(chunk)


class RangeServer:
    """Serves the files of ``root`` on 127.0.0.1 (an ephemeral port) with byte ranges."""

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        root: Path
        owner: RangeServer

    def __init__(self, root: Path) -> None:
        self.lock = threading.Lock()
        self.bytes_sent = 0
        self.down = threading.Event()
        self.stall = threading.Event()  # set: answer with headers, then send nothing
        self.resume = threading.Event()  # set: stalled answers give up (close the connection)
        self.httpd = RangeServer.Server(("127.0.0.1", 0), _Handler)
        self.httpd.root = root
        self.httpd.owner = self
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        self.resume.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class NginxServer:
    """nginx serving ``root`` on 127.0.0.1 (a free port), as object storage would: byte ranges,
    keep-alive; ``bytes_sent`` sums the bodies it sent (from its access log)."""

    def __init__(self, root: Path) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.dir = Path(tempfile.mkdtemp(prefix="nd-nginx-"))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        log = self.dir / "access.log"
        temp = " ".join(
            f"{kind}_temp_path {self.dir};" for kind in ("client_body", "proxy", "fastcgi")
        )
        (self.dir / "nginx.conf").write_text(
            f"daemon off; master_process off; pid {self.dir}/nginx.pid;\n"
            f"error_log {self.dir}/error.log;\n"
            "events { worker_connections 256; }\n"
            f"http {{ log_format sent '$body_bytes_sent'; access_log {log} sent; {temp}\n"
            f"  uwsgi_temp_path {self.dir}; scgi_temp_path {self.dir};\n"
            f"  server {{ listen 127.0.0.1:{self.port}; root {root}; }} }}\n"
        )
        self.log = log
        self.proc = subprocess.Popen(
            [binary, "-c", str(self.dir / "nginx.conf"), "-e", str(self.dir / "error.log")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as client:
                if client.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        self.close()
        raise RuntimeError(f"nginx did not start: {(self.dir / 'error.log').read_text()}")

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    @property
    def bytes_sent(self) -> int:
        time.sleep(0.2)  # nginx logs a request when it has finished sending it
        if not self.log.exists():
            return 0
        return sum(int(line) for line in self.log.read_text().split() if line.isdigit())

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def padding_file(path: Path, size: int) -> Path:
    """``size`` random bytes (incompressible, so the SIF really grows by about that much)."""
    with path.open("wb") as handle:
        left = size
        while left > 0:
            chunk = os.urandom(min(left, 1 << 20))
            handle.write(chunk)
            left -= len(chunk)
    return path


def padded_sif(rootfs: Path, dest: Path, env: dict[str, str], padding: int) -> Path:
    """A SIF of ``rootfs`` plus ``padding`` random bytes in /opt/padding (never read)."""
    from neurodesk.image.sif_write import write_sif

    extra = {}
    if padding:
        extra["opt/padding/blob.bin"] = padding_file(dest.with_suffix(".pad"), padding)
    write_sif(rootfs, dest, env, extra_files=extra)
    if padding:
        dest.with_suffix(".pad").unlink()
    return dest


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` (from /proc/self/mounts)."""
    prefix = str(path)
    found = []
    with open("/proc/self/mounts") as handle:
        for line in handle:
            point = line.split()[1].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found
