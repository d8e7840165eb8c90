"""SIFs of store images, for publishing: beside a pushed image, or beside a tree's sandbox.

``publish NAME --registry HOST/NS --sif``: the SIF is written from the store image
(:func:`neurodesk.image.sif_write.write_sif`) into a temporary file next to the store, pushed
as the image's referrer artifact (:mod:`neurodesk.publish.sif_artifact`), and removed.

``publish --tree DIR --sif``: :func:`write_sif_beside` writes ``<id>.sif`` and its
``<id>.sif.sha256`` into the container directory, where ``install --lazy --from URL-OF-TREE``
finds them (an HTTP server serving the tree is all a lazy install needs).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from neurodesk.paths import Paths
from neurodesk.publish.sif_artifact import SifPush, push_sif_artifact
from neurodesk.sources.config import Config
from neurodesk.sources.registry import Registry, RegistryAddress
from neurodesk.store import ImageRecord


def publish_sif(
    paths: Paths, record: ImageRecord, target: str, insecure: bool, settings: Config
) -> SifPush:
    from neurodesk.image.sif_write import write_sif

    address = RegistryAddress.parse(target, insecure)
    work = paths.cache / "publish"
    work.mkdir(parents=True, exist_ok=True)
    sif = work / f"{record.id}.sif"
    try:
        write_sif(record.rootfs, sif, record.env, record.labels)
        registry = Registry(address, settings.timeout, settings.http_settings())
        try:
            repo = address.repo(f"{record.name}_{record.version}")
            return push_sif_artifact(registry, repo, record.builddate, sif, f"{record.id}.sif")
        finally:
            registry.close()
    finally:
        sif.unlink(missing_ok=True)


def write_sif_beside(record: ImageRecord, directory: Path) -> Path:
    """Write ``directory/<id>.sif`` and ``<id>.sif.sha256`` (each appears by one rename)."""
    from neurodesk.image.sif_write import write_sif

    sif = directory / f"{record.id}.sif"
    part = sif.with_name(sif.name + ".part")
    try:
        write_sif(record.rootfs, part, record.env, record.labels)
        digest = hashlib.sha256()
        with part.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        sidecar = sif.with_name(sif.name + ".sha256")
        sidecar_part = sidecar.with_name(sidecar.name + ".part")
        sidecar_part.write_text(f"{digest.hexdigest()}  {sif.name}\n")
        os.replace(part, sif)
        os.replace(sidecar_part, sidecar)
    finally:
        part.unlink(missing_ok=True)
        sif.with_name(sif.name + ".sha256.part").unlink(missing_ok=True)
    return sif
