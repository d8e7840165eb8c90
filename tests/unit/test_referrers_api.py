"""SIF artifacts through the OCI 1.1 Referrers API (a small registry on loopback that has it;
Debian's docker-registry, used by the integration tests, only has the tag schema)."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from neurodesk.publish.sif_artifact import push_sif_artifact
from neurodesk.sources.referrers import INDEX, SIF_ARTIFACT, find_sif
from neurodesk.sources.registry import OCI_MANIFEST, Registry, RegistryAddress


class ReferrersRegistry:
    """Manifests and blobs in memory; ``/v2/<repo>/referrers/<digest>`` lists every manifest
    whose ``subject`` is that digest, filtered by ``artifactType``."""

    def __init__(self) -> None:
        self.manifests: dict[str, tuple[bytes, str]] = {}  # digest → (raw, media type)
        self.tags: dict[str, str] = {}  # "repo:tag" → digest
        self.blobs: dict[str, bytes] = {}
        self.uploads: dict[str, bytearray] = {}
        self.log: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def reply(self, status: int, body: bytes = b"", **headers: str) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key.replace("_", "-"), value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def route(self) -> None:
                owner.log.append(f"{self.command} {self.path}")
                path, _, query = self.path.partition("?")
                if path == "/v2/":
                    return self.reply(200, b"{}", Content_Type="application/json")
                m = re.fullmatch(r"/v2/(.+)/manifests/([^/]+)", path)
                if m and self.command in ("GET", "HEAD"):
                    ref = m.group(2)
                    digest = ref if ref.startswith("sha256:") else owner.tags.get(f"{m[1]}:{ref}")
                    if digest not in owner.manifests:
                        return self.reply(404, b"{}", Content_Type="application/json")
                    raw, media = owner.manifests[digest]
                    return self.reply(200, raw, Content_Type=media, Docker_Content_Digest=digest)
                if m and self.command == "PUT":
                    raw = self.body()
                    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
                    owner.manifests[digest] = (raw, self.headers["Content-Type"])
                    if not m[2].startswith("sha256:"):
                        owner.tags[f"{m[1]}:{m[2]}"] = digest
                    extra = {}
                    subject = json.loads(raw).get("subject")
                    if subject:
                        extra["OCI_Subject"] = subject["digest"]
                    return self.reply(201, Docker_Content_Digest=digest, **extra)
                m = re.fullmatch(r"/v2/(.+)/referrers/(sha256:[0-9a-f]+)", path)
                if m:
                    wanted = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
                    kind = wanted.get("artifactType", "").replace("%2F", "/")
                    entries = []
                    for digest, (raw, media) in owner.manifests.items():
                        data = json.loads(raw)
                        if (data.get("subject") or {}).get("digest") != m[2]:
                            continue
                        if kind and data.get("artifactType") != kind:
                            continue
                        entries.append(
                            {
                                "mediaType": media,
                                "digest": digest,
                                "size": len(raw),
                                "artifactType": data.get("artifactType"),
                                "annotations": data.get("annotations") or {},
                            }
                        )
                    index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": entries}
                    return self.reply(200, json.dumps(index).encode(), Content_Type=INDEX)
                m = re.fullmatch(r"/v2/(.+)/blobs/(sha256:[0-9a-f]+)", path)
                if m:
                    if m[2] not in owner.blobs:
                        return self.reply(404)
                    data = owner.blobs[m[2]]
                    return self.reply(200, data, Content_Type="application/octet-stream")
                if re.fullmatch(r"/v2/(.+)/blobs/uploads/", path) and self.command == "POST":
                    name = f"u{len(owner.uploads)}"
                    owner.uploads[name] = bytearray()
                    return self.reply(202, Location=f"/upload/{name}")
                m = re.fullmatch(r"/upload/(u\d+)", path)
                if m:
                    owner.uploads[m[1]] += self.body()
                    if self.command == "PUT":
                        digest = query.split("digest=")[1].replace("%3A", ":")
                        owner.blobs[digest] = bytes(owner.uploads[m[1]])
                        return self.reply(201)
                    return self.reply(202, Location=f"/upload/{m[1]}")
                return self.reply(404)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = route

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def registry() -> Iterator[ReferrersRegistry]:
    server = ReferrersRegistry()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_sif_artifacts_through_the_referrers_api(
    registry: ReferrersRegistry, tmp_path: Path
) -> None:
    image = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}).encode()
    digest = "sha256:" + hashlib.sha256(image).hexdigest()
    registry.manifests[digest] = (image, OCI_MANIFEST)
    registry.tags["neurodesk/fsl:6.0.7.4_20231025"] = digest
    sif = tmp_path / "fsl.sif"
    sif.write_bytes(b"SIF" * 1000)
    client = Registry(RegistryAddress.parse(registry.address, insecure=True))
    pushed = push_sif_artifact(client, "neurodesk/fsl", "6.0.7.4_20231025", sif, "fsl.sif")
    assert pushed.via == "referrers API"
    assert not [t for t in registry.tags if "sha256-" in t]  # no tag-schema index written
    found = find_sif(client, "neurodesk/fsl", "6.0.7.4_20231025")
    assert found.via == "referrers API" and found.subject == digest
    assert found.digest == "sha256:" + hashlib.sha256(sif.read_bytes()).hexdigest()
    assert any("artifactType=application%2Fvnd.sylabs.sif.layer.v1.sif" in line
               for line in registry.log)  # fmt: skip
    # Another artifact type referring to the same image is not taken for the SIF.
    other = {**json.loads(registry.manifests[pushed.artifact][0]), "artifactType": "x/sbom"}
    other["annotations"] = {"org.opencontainers.image.created": "2999-01-01T00:00:00Z"}
    raw = json.dumps(other).encode()
    registry.manifests["sha256:" + hashlib.sha256(raw).hexdigest()] = (raw, OCI_MANIFEST)
    assert find_sif(client, "neurodesk/fsl", "6.0.7.4_20231025").digest == found.digest
    assert SIF_ARTIFACT in registry.manifests[pushed.artifact][0].decode()
    client.close()
