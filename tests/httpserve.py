"""A small HTTP server on 127.0.0.1 (ephemeral port) for tests: files from a directory, with
Range requests, ETag/If-None-Match, and faults to order (a status, an HTML page, a delay per
chunk, a stall, a truncated or corrupted body).

    with FileServer(root) as server:            # server.url == "http://127.0.0.1:PORT/"
        server.fault = Fault(status=500)        # every request now answers 500
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType


@dataclass
class Fault:
    status: int | None = None  # answer this status (with an empty body)
    html: bool = False  # answer 200 with an HTML page
    delay: float = 0.0  # seconds per 64 KiB sent (a slow mirror)
    stall: float = 0.0  # sleep this long before the first byte (a stalled mirror)
    corrupt: bool = False  # flip one byte of every body
    truncate: bool = False  # send half the body, then close
    retry_after: str = ""  # with status 429
    fail_after: int | None = None  # answer 500 after this many GETs were served


@dataclass
class FileServer:
    root: Path
    fault: Fault = field(default_factory=Fault)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    timed: list[tuple[str, str, dict[str, str], float]] = field(default_factory=list)
    served: int = 0

    def __post_init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _file(self) -> Path | None:
                relative = self.path.split("?", 1)[0].lstrip("/")
                path = (owner.root / relative).resolve()
                if owner.root.resolve() not in path.parents or not path.is_file():
                    return None
                return path

            def _answer(self, head: bool) -> None:
                owner.requests.append((self.command, self.path, dict(self.headers.items())))
                owner.timed.append(
                    (self.command, self.path, dict(self.headers.items()), time.monotonic())
                )
                fault = owner.fault
                if fault.fail_after is not None and self.command == "GET":
                    owner.served += 1
                    if owner.served > fault.fail_after:
                        fault = Fault(status=500)
                if fault.stall:
                    time.sleep(fault.stall)
                if fault.status is not None:
                    self.send_response(fault.status)
                    if fault.retry_after:
                        self.send_header("Retry-After", fault.retry_after)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if fault.html:
                    page = b"<!DOCTYPE html><html><body>Sign in</body></html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    if not head:
                        self.wfile.write(page)
                    return
                path = self._file()
                if path is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                size = path.stat().st_size
                stamp = f"{size}-{path.stat().st_mtime_ns}".encode()
                etag = '"' + hashlib.sha256(stamp).hexdigest()[:16] + '"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start, end, status = 0, size - 1, 200
                wanted = self.headers.get("Range", "")
                if wanted.startswith("bytes="):
                    first, _, last = wanted.removeprefix("bytes=").partition("-")
                    start = int(first)
                    end = min(int(last), size - 1) if last else size - 1
                    status = 206
                length = end - start + 1
                self.send_response(status)
                self.send_header("Content-Length", str(length))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", self.date_time_string(int(path.stat().st_mtime)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                self.end_headers()
                if head:
                    return
                send = length // 2 if fault.truncate else length
                with path.open("rb") as handle:
                    handle.seek(start)
                    sent = 0
                    while sent < send:
                        chunk = handle.read(min(64 << 10, send - sent))
                        if not chunk:
                            break
                        if fault.corrupt and sent == 0:
                            chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                        if fault.delay:
                            time.sleep(fault.delay)
                        try:
                            self.wfile.write(chunk)
                        except (BrokenPipeError, ConnectionResetError):
                            return
                        sent += len(chunk)
                if fault.truncate:
                    self.close_connection = True

            def do_GET(self) -> None:
                self._answer(head=False)

            def do_HEAD(self) -> None:
                self._answer(head=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.server.shutdown()
        self.server.server_close()
