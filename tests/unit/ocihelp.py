"""Writing small OCI image layouts from Python, for store tests that need no external tools."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path


def _blob(root: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    path = root / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def layer_bytes(files: dict[str, bytes], mtime: int = 1_700_000_000) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.endswith(".sh") else 0o644
            info.mtime = mtime
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_layout(
    root: Path,
    layers: list[dict[str, bytes]],
    env: list[str] | None = None,
    labels: dict[str, str] | None = None,
) -> Path:
    """An OCI layout at ``root`` with one image made of ``layers`` (name → content)."""
    (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    layer_descs = []
    diff_ids = []
    for files in layers:
        data = layer_bytes(files)
        desc = _blob(root, data)
        layer_descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", **desc})
        diff_ids.append(desc["digest"])
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": env or ["PATH=/usr/bin:/bin"], "Labels": labels or {"t": "1"}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    config_desc = _blob(root, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_desc},
        "layers": layer_descs,
    }
    manifest_desc = _blob(root, json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest_desc}],
    }
    (root / "index.json").write_text(json.dumps(index))
    return root
