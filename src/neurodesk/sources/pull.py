"""Bring one image from a remote source into the local store: blobs in parallel, verified.

Blobs are downloaded into ``$NEURODESK_HOME/cache/fetch/<manifest hex>/`` laid out as an OCI
image layout, then the store imports that layout (verifying every digest again as it copies).
An interrupted pull leaves ``.part`` files there, which the next pull resumes; blobs the store
already has are linked in, never downloaded again.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from filelock import FileLock

from neurodesk.image.oci import Descriptor, ImageFormatError, OCILayout
from neurodesk.paths import Paths
from neurodesk.sources.progress import NullProgress, TransferProgress
from neurodesk.sources.transfer import OnBytes
from neurodesk.store import ImageRecord, Store
from neurodesk.store.atomic import write_text

GetBlob = Callable[[Descriptor, Path, OnBytes], None]
WORKERS = 4


def parse_manifest(raw: bytes) -> tuple[Descriptor, list[Descriptor]]:
    try:
        data = json.loads(raw)
        config = Descriptor.from_json(data["config"])
        listed = data.get("layers") or []
        if not isinstance(listed, list):
            raise TypeError("'layers' is not a list")
        layers = [Descriptor.from_json(layer) for layer in listed]
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise ImageFormatError(f"malformed image manifest: {exc}") from None
    for descriptor in (config, *layers):
        _ = descriptor.hex  # only sha256, and no path tricks in a digest
    return config, layers


def _link_or_copy(src: Path, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".link")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    tmp.replace(dest)


def pull_image(
    paths: Paths,
    name: str,
    version: str,
    builddate: str,
    manifest_raw: bytes,
    manifest_digest: str,
    media_type: str,
    get_blob: GetBlob,
    progress: TransferProgress | None = None,
) -> ImageRecord:
    """Download what the store lacks of the image, then import it under name/version/date."""
    progress = progress or NullProgress()
    store = Store(paths.store)
    config, layers = parse_manifest(manifest_raw)
    work = paths.cache / "fetch" / manifest_digest.removeprefix("sha256:")
    blobs = work / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    with FileLock(str(work) + ".lock"):
        manifest_file = blobs / manifest_digest.removeprefix("sha256:")
        manifest_file.with_suffix(".tmp").write_bytes(manifest_raw)
        manifest_file.with_suffix(".tmp").replace(manifest_file)
        wanted: list[Descriptor] = []
        for descriptor in (config, *layers):
            dest = blobs / descriptor.hex
            if dest.exists():
                continue
            if store.blob_path(descriptor.digest).exists():
                _link_or_copy(store.blob_path(descriptor.digest), dest)
            elif descriptor not in wanted:
                wanted.append(descriptor)

        def one(descriptor: Descriptor) -> None:
            key = descriptor.digest
            progress.add(key, f"{descriptor.hex[:12]}", descriptor.size)
            get_blob(descriptor, blobs / descriptor.hex, lambda n: progress.advance(key, n))

        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            for future in [pool.submit(one, d) for d in wanted]:
                future.result()
        write_text(work / "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}))
        index = {
            "schemaVersion": 2,
            "manifests": [
                {"mediaType": media_type, "digest": manifest_digest, "size": len(manifest_raw)}
            ],
        }
        write_text(work / "index.json", json.dumps(index))
        record = store.import_layout(OCILayout(work), name, version, builddate)
        shutil.rmtree(work, ignore_errors=True)
    Path(str(work) + ".lock").unlink(missing_ok=True)
    return record
