"""Static files from a directory through Debian's nginx on 127.0.0.1, one port per mirror.

For benchmarks that compare HTTP clients: a Python server sharing the machine's cores would
measure itself, so both clients are measured against the same fast server (sendfile, Range).

    with NginxMirrors(root, count=2) as mirrors:   # mirrors.urls == ["http://127.0.0.1:P/", ...]
        ...
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

NGINX = "/usr/sbin/nginx"


def available() -> bool:
    return Path(NGINX).is_file() or shutil.which("nginx") is not None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config(root: Path, ports: list[int], state: Path) -> str:
    user = "user root;\n" if os.geteuid() == 0 else ""
    servers = "".join(
        f"    server {{ listen 127.0.0.1:{port}; root {root}; location / {{ }} }}\n"
        for port in ports
    )
    return (
        f"{user}daemon off;\nworker_processes 1;\npid {state}/nginx.pid;\n"
        f"error_log {state}/error.log;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        f"    access_log off;\n    client_body_temp_path {state}/body;\n"
        f"    proxy_temp_path {state}/proxy;\n    fastcgi_temp_path {state}/fastcgi;\n"
        f"    uwsgi_temp_path {state}/uwsgi;\n    scgi_temp_path {state}/scgi;\n"
        "    default_type application/octet-stream;\n"
        "    sendfile on; tcp_nopush on; keepalive_requests 100000;\n"
        f"{servers}"
        "}\n"
    )


class NginxMirrors:
    """``count`` mirrors of ``root`` served by one nginx process (one port each)."""

    def __init__(self, root: Path, count: int = 2) -> None:
        self.root = root.resolve()
        self.count = count
        self.state = Path(tempfile.mkdtemp(prefix="nginx-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.urls: list[str] = []

    def __enter__(self) -> NginxMirrors:
        for _attempt in range(5):
            ports = [_free_port() for _ in range(self.count)]
            conf = self.state / "nginx.conf"
            conf.write_text(_config(self.root, ports, self.state))
            self.proc = subprocess.Popen(
                [NGINX, "-c", str(conf), "-p", str(self.state)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._ready(ports):
                self.urls = [f"http://127.0.0.1:{port}/" for port in ports]
                return self
            self._stop()
        raise RuntimeError(f"nginx did not start: {self.state / 'error.log'}")

    def _ready(self, ports: list[int]) -> bool:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                for port in ports:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def _stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop()
        shutil.rmtree(self.state, ignore_errors=True)
