"""Small hostile HTTP servers on 127.0.0.1 (ephemeral ports, bounded, self-stopping).

:class:`HostileServer` answers ``/v2/`` like a healthy registry (so it wins or passes a mirror
probe) and everything else according to ``mode``:

* ``trickle`` — a real answer (proxied from ``upstream`` when given) sent a few bytes at a time;
* ``stall`` — the headers and a few bytes, then nothing;
* ``redirect-loop`` — 302 to itself, for ever;
* ``html`` — ``200 text/html`` for every request, whatever the method (also for ``/v2/`` when
  ``html_everywhere``);
* ``garbage-json`` — ``200 application/json`` that is not JSON;
* ``garbage-manifest`` — a JSON object of the manifest type that is no manifest;
* ``wrong-shape`` — JSON of the wrong shape (a list where an object is due, tags as numbers);
* ``catalog-loop`` — an empty repository list whose next page is itself.

With ``target``, only paths containing it are attacked; the rest is proxied to ``upstream``
unchanged. Every connection ends after ``max_seconds`` at the latest; :meth:`close` stops the
server.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

HTML = b"<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>"


class HostileServer:
    def __init__(
        self,
        mode: str,
        upstream: str | None = None,
        html_everywhere: bool = False,
        target: str = "",
        max_seconds: float = 20.0,
        trickle_delay: float = 0.2,
    ) -> None:
        self.mode = mode
        self.upstream = upstream
        self.html_everywhere = html_everywhere
        self.target = target
        self.max_seconds = max_seconds
        self.trickle_delay = trickle_delay
        self.requests: list[str] = []
        self._stop = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _any(self) -> None:
                owner.requests.append(f"{self.command} {self.path}")
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                owner.answer(self)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}/"

    def close(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- answers ---------------------------------------------------------------------------------
    def _send(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        content_type: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            h.send_header(key, value)
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def _upstream(self, h: BaseHTTPRequestHandler) -> tuple[int, bytes, dict[str, str]]:
        if not self.upstream:
            return 200, bytes(range(256)) * 400, {"Content-Type": "application/octet-stream"}
        headers = {k: v for k, v in h.headers.items() if k.lower() in ("accept", "range")}
        got = httpx.request(h.command, self.upstream + h.path, headers=headers, timeout=10)
        keep = ("content-type", "docker-content-digest", "content-range")
        return got.status_code, got.content, {k: v for k, v in got.headers.items() if k in keep}

    def answer(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?")[0]
        if path == "/v2/" and not self.html_everywhere:
            self._send(h, 200, b"{}", "application/json")
            return
        mode = self.mode
        if self.target and self.target not in path:
            status, body, headers = self._upstream(h)
            self._send(h, status, body, headers.pop("content-type", ""), headers)
            return
        if mode == "html":
            self._send(h, 200, HTML, "text/html; charset=utf-8")
        elif mode == "garbage-json":
            self._send(h, 200, b'{"schemaVersion": 2, "lay', "application/json")
        elif mode == "garbage-manifest":
            body = b'{"schemaVersion": 2, "config": "nope", "layers": {"a": 1}}'
            self._send(h, 200, body, "application/vnd.oci.image.manifest.v1+json")
        elif mode == "wrong-shape":
            self._send(
                h, 200, b'{"tags": [1, 2], "repositories": "x", "manifests": 7}', "application/json"
            )
        elif mode == "catalog-loop":
            link = {"Link": f'<{h.path}>; rel="next"'}
            self._send(h, 200, b'{"repositories": []}', "application/json", link)
        elif mode == "redirect-loop":
            self._send(h, 302, b"", "text/plain", {"Location": path})
        elif mode in ("trickle", "stall"):
            status, body, headers = self._upstream(h)
            h.send_response(status)
            for key, value in headers.items():
                h.send_header(key, value)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            if h.command == "HEAD":
                return
            h.wfile.write(body[:16])
            h.wfile.flush()
            deadline = time.monotonic() + self.max_seconds
            if mode == "stall":
                self._stop.wait(self.max_seconds)
                return
            sent = 16
            while sent < len(body) and time.monotonic() < deadline and not self._stop.is_set():
                try:
                    h.wfile.write(body[sent : sent + 4])
                    h.wfile.flush()
                except OSError:
                    return
                sent += 4
                time.sleep(self.trickle_delay)
            h.close_connection = True
        else:
            raise AssertionError(f"unknown mode {mode}")
