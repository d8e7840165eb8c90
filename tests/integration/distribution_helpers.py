"""Real servers and small images for the distribution tests (issue 7).

* :class:`RegistryServer` — Debian's ``docker-registry`` on 127.0.0.1, storage in a temp dir;
* :class:`FaultProxy` — a loopback TCP proxy we control: it cuts a connection after N bytes
  of a response, or stalls it, so "the registry died mid-pull" is deterministic;
* :class:`FileServer` — a static HTTP server with ``Range`` support (Python's own has none);
* :func:`tiny_layout` — an OCI image layout built from a few generated files (no busybox).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import random
import socket
import subprocess
import tarfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class RegistryServer:
    """``docker-registry serve`` with filesystem storage under ``root``."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    def start(self) -> RegistryServer:
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log: {level: error}\n"
            f"storage: {{filesystem: {{rootdirectory: {self.storage}}}}}\n"
            f"http: {{addr: 127.0.0.1:{self.port}}}\n"
        )
        log = (self.root / "registry.log").open("ab")
        self.proc = subprocess.Popen(
            ["/usr/bin/docker-registry", "serve", str(config)], stdout=log, stderr=log
        )
        wait_http(f"http://{self.address}/v2/")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def blob_file(self, digest: str) -> Path:
        hexa = digest.removeprefix("sha256:")
        return self.storage / "docker/registry/v2/blobs/sha256" / hexa[:2] / hexa / "data"


class FaultProxy:
    """Forwards 127.0.0.1:port → target.

    While ``faults`` > 0, a connection whose response passes ``cut_after`` bytes is cut there
    (or, with ``stall``, left hanging) and ``faults`` drops by one. ``delay`` holds back the
    first response bytes of every connection (a slow, far-away mirror)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.cut_after: int | None = None
        self.stall = False
        self.faults = 0
        self.delay = 0.0
        self.cuts = 0
        self.requests: list[bytes] = []
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self._stop.set()
        self._server.close()

    def saw(self, text: str) -> bool:
        return any(text.encode() in chunk for chunk in self.requests)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:  # the server behind is down (a test stopped it): the client sees a close
            client.close()
            return

        def upward() -> None:
            try:
                while data := client.recv(65536):
                    self.requests.append(data)
                    upstream.sendall(data)
            except OSError:
                pass

        threading.Thread(target=upward, daemon=True).start()
        sent = 0
        try:
            while data := upstream.recv(65536):
                if sent == 0 and self.delay:
                    time.sleep(self.delay)
                if (
                    self.faults > 0
                    and self.cut_after is not None
                    and sent + len(data) > self.cut_after
                ):
                    self.faults -= 1
                    self.cuts += 1
                    client.sendall(data[: max(0, self.cut_after - sent)])
                    if self.stall:
                        self._stop.wait(60)
                    break
                client.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


class _RangeHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_head(self):  # type: ignore[no-untyped-def]
        path = Path(self.translate_path(self.path))
        header = self.headers.get("Range")
        if not header or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        start = int(header.removeprefix("bytes=").split("-")[0])
        if start >= size:
            self.send_error(416)
            return None
        handle = path.open("rb")
        handle.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        return handle


class FileServer:
    def __init__(self, directory: Path) -> None:
        handler = lambda *a, **k: _RangeHandler(*a, directory=str(directory), **k)  # noqa: E731
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _blob(root: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    path = root / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _layer(files: dict[str, bytes | str]) -> tuple[bytes, str]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        dirs: set[str] = set()
        for name, content in sorted(files.items()):
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1700000000
                    tar.addfile(info)
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1700000000
            info.mode = 0o755 if name.startswith(("usr/bin/", "opt/")) else 0o644
            tar.addfile(info, io.BytesIO(data))
    diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
    return gzip.compress(raw.getvalue(), mtime=0), diff_id


def tiny_layout(
    root: Path,
    name: str = "tiny",
    version: str = "1.0",
    builddate: str = "20260101",
    payload: int = 256 * 1024,
    seed: int = 0,
) -> Path:
    """An OCI layout with two gzip layers (a tool, a data file of ``payload`` random bytes)."""
    # Random bytes, so gzip cannot squash the payload away; seeded, so layouts are reproducible.
    data = random.Random(f"{name}{version}{seed}").randbytes(payload)
    tool = f"#!/bin/sh\necho {name} {version}\n"
    layers = [
        _layer({"usr/bin/tinytool": tool, "README.md": f"# {name}\nA tiny test image.\n"}),
        _layer(
            {
                "opt/tiny/data.bin": data,
                "build.yaml": f"name: {name}\nversion: '{version}'\n"
                "categories: [programming]\ncopyright: [{license: MIT, url: 'https://x'}]\n",
            }
        ),
    ]
    layer_descs = [
        {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **_blob(root, blob)}
        for blob, _ in layers
    ]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/bin:/bin", "DEPLOY_BINS=tinytool"],
            "Labels": {"org.opencontainers.image.title": name},
        },
        "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]},
    }
    config_desc = {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        **_blob(root, json.dumps(config).encode()),
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": layer_descs,
    }
    manifest_desc = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        **_blob(root, json.dumps(manifest).encode()),
        "annotations": {"org.opencontainers.image.ref.name": f"{name}_{version}:{builddate}"},
    }
    index_path = root / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {"manifests": []}
    index = {"schemaVersion": 2, "manifests": [*index["manifests"], manifest_desc]}
    index_path.write_text(json.dumps(index))
    (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    return root


def store_digests_ok(store_root: Path) -> list[str]:
    """Blobs whose content does not match their name (must be none)."""
    bad = []
    for path in (store_root / "blobs" / "sha256").glob("*"):
        if path.name.startswith("."):
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != path.name:
            bad.append(path.name)
    return bad


def env_without(*keys: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in keys}
