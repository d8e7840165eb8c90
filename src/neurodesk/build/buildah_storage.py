"""Exporting a buildah image straight from its storage, layer by layer.

``buildah push`` reads, hashes and (even with ``--disable-compression``) gzips every layer of
the image on each export, although after a one-directive change most layers are the very
ones the store already holds. Here the manifest and config come from ``buildah inspect`` (the
image as buildah stores it: uncompressed layers named by their digest), and only the layers
the store lacks are written, rebuilt byte for byte from containers/storage's tar-split record
and the layer's directory (:mod:`neurodesk.store.tarsplit`). Each layer's tar-split record is
copied beside the layout so the store can drop the blob and rebuild it later.

Anything unexpected in the storage (another driver, a compressed layer, a missing record)
makes this return False and the caller falls back to ``buildah push``; the store checks every
digest either way.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from neurodesk.build.builder import SkipLayers
from neurodesk.store.tarsplit import TarSplitError, rebuild

UNCOMPRESSED = "application/vnd.oci.image.layer.v1.tar"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _blob(dest: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    path = dest / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"sha256:{digest}"


def _layer_ids(storage: Path) -> dict[str, str]:
    """Uncompressed layer digest → containers/storage layer id (overlay driver)."""
    data = json.loads((storage / "overlay-layers" / "layers.json").read_text())
    found: dict[str, str] = {}
    for layer in data if isinstance(data, list) else []:
        if isinstance(layer, dict) and layer.get("diff-digest") and layer.get("id"):
            found.setdefault(str(layer["diff-digest"]), str(layer["id"]))
    return found


def export_from_storage(
    inspect: dict[str, Any], storage: Path, dest: Path, skip: SkipLayers
) -> bool:
    """Write the image ``inspect`` (``buildah inspect --type image`` output) as an OCI layout at
    ``dest``, leaving out the layer blobs ``skip(layer digests)`` names. False when the storage
    is not one we can read this way."""
    try:
        manifest_raw = str(inspect["Manifest"]).encode()
        config_raw = str(inspect["Config"]).encode()
        manifest = json.loads(manifest_raw)
        layers = manifest["layers"]
        config_digest = manifest["config"]["digest"]
        ids = _layer_ids(storage)
    except (KeyError, TypeError, ValueError, OSError):
        return False
    if "sha256:" + hashlib.sha256(config_raw).hexdigest() != config_digest:
        return False
    if any(layer.get("mediaType") != UNCOMPRESSED or layer.get("digest") not in ids
           for layer in layers):  # fmt: skip
        return False
    unneeded = set(skip([str(layer["digest"]) for layer in layers]))
    records = dest / "tarsplit"
    records.mkdir(parents=True, exist_ok=True)
    try:
        for layer in layers:
            digest = str(layer["digest"])
            layer_id = ids[digest]
            record = storage / "overlay-layers" / f"{layer_id}.tar-split.gz"
            shutil.copyfile(record, records / f"{digest.removeprefix('sha256:')}.gz")
            if digest in unneeded:
                continue
            blob = dest / "blobs" / "sha256" / digest.removeprefix("sha256:")
            blob.parent.mkdir(parents=True, exist_ok=True)
            rebuild(record, storage / "overlay" / layer_id / "diff", blob, digest)
    except (OSError, TarSplitError):
        return False
    _blob(dest, config_raw)
    manifest_digest = _blob(dest, manifest_raw)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {"mediaType": MANIFEST, "digest": manifest_digest, "size": len(manifest_raw)}
        ],
    }
    (dest / "index.json").write_text(json.dumps(index))
    (dest / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return True
