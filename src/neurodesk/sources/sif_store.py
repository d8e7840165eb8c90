"""Bringing a downloaded, checked SIF file into the store (unpacked with ``unsquashfs -o``).

Until SIF images are mounted in place (another issue), the SIF's system partition is unpacked
into the store by :func:`neurodesk.store.imports.import_path`. The file is only handed over
after its bytes were checked, and it is removed afterwards (the store keeps the unpacked tree).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from neurodesk.paths import Paths
from neurodesk.sources.origins import record_origin
from neurodesk.sources.progress import TransferProgress
from neurodesk.store import ImageRecord, Store


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def download_dir(paths: Paths) -> Path:
    folder = paths.cache / "downloads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def import_sif(
    paths: Paths,
    sif: Path,
    name: str,
    version: str,
    builddate: str,
    channel: str,
    url: str,
    sha256: str,
    verified: str,
    progress: TransferProgress | None = None,
    keep: bool = False,
) -> ImageRecord:
    from neurodesk.store.imports import import_path

    try:
        record = import_path(
            Store(paths.store), sif, name, version, builddate, sha256=None if keep else sha256
        )
    finally:
        if not keep:
            sif.unlink(missing_ok=True)
    record_origin(paths, record.id, channel, url, sha256, verified)
    return record
