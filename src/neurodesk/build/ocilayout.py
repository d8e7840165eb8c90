"""Writing a one-layer OCI image layout from a root filesystem directory.

Builders that do not speak OCI (Apptainer makes SIF files) hand their result to the store this
way: the directory becomes one uncompressed layer, with the environment and labels in the
image config, so the store verifies and unpacks it like any other image.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neurodesk.recipe.context import host_arch

OCI_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def _blob(layout: Path, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"sha256:{digest}", len(data)


def _reset(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = 0  # the same tree gives the same layer digest
    return info


def write_layout(
    rootfs: Path, dest: Path, env: Mapping[str, str], labels: Mapping[str, str]
) -> str:
    """Write ``rootfs`` as an OCI layout at ``dest``; returns the manifest digest."""
    dest.mkdir(parents=True, exist_ok=True)
    layer = dest / "layer.tar"
    with tarfile.open(layer, "w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(os.listdir(rootfs)):
            tar.add(rootfs / entry, arcname=entry, filter=_reset)
    sha = hashlib.sha256()
    with layer.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            sha.update(chunk)
    layer_digest = f"sha256:{sha.hexdigest()}"
    layer_size = layer.stat().st_size
    target = dest / "blobs" / "sha256" / sha.hexdigest()
    target.parent.mkdir(parents=True, exist_ok=True)
    layer.replace(target)
    config: dict[str, Any] = {
        "architecture": OCI_ARCH.get(host_arch(), host_arch()),
        "os": "linux",
        "config": {
            "Env": [f"{k}={v}" for k, v in env.items()],
            "Labels": dict(labels),
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }
    config_digest, config_size = _blob(dest, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer_digest,
                "size": layer_size,
            }
        ],
    }
    manifest_digest, manifest_size = _blob(dest, json.dumps(manifest, sort_keys=True).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest_size,
            }
        ],
    }
    (dest / "index.json").write_text(json.dumps(index))
    (dest / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return manifest_digest
