"""``neurodesk publish NAME --registry HOST/NS --sif``: the SIF beside the pushed image.

The SIF is written from the store image (:func:`neurodesk.image.sif_write.write_sif`) into a
temporary file next to the store, pushed as the image's referrer artifact
(:mod:`neurodesk.publish.sif_artifact`), and removed.
"""

from __future__ import annotations

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
