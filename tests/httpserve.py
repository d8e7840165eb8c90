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
                data = path.read_bytes()
                etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start, end, status = 0, len(data) - 1, 200
                wanted = self.headers.get("Range", "")
                if wanted.startswith("bytes="):
                    first, _, last = wanted.removeprefix("bytes=").partition("-")
                    start = int(first)
                    end = min(int(last), len(data) - 1) if last else len(data) - 1
                    status = 206
                body = data[start : end + 1]
                if fault.corrupt and body:
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("ETag", etag)
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                self.end_headers()
                if head:
                    return
                if fault.truncate:
                    body = body[: len(body) // 2]
                for offset in range(0, len(body), 64 << 10):
                    if fault.delay:
                        time.sleep(fault.delay)
                    try:
                        self.wfile.write(body[offset : offset + (64 << 10)])
                    except (BrokenPipeError, ConnectionResetError):
                        return
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
