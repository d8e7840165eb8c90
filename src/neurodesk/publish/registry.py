"""``neurodesk publish NAME --registry HOST[:PORT]/NS``: push an image with its digest.

The store keeps each image's manifest byte for byte, so the pushed image has the digest the
store knows. Every answer is checked (:mod:`neurodesk.sources.http`), and the manifest is read
back by its tag before success is reported. Blobs the registry already has (HEAD) are skipped,
so a repeated or interrupted push only sends what is missing.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from neurodesk.errors import NeurodeskError
from neurodesk.publish.refetch import layer_blob
from neurodesk.sources.http import SourceError
from neurodesk.sources.mirrors import MirrorSet
from neurodesk.sources.progress import NullProgress, TransferProgress
from neurodesk.sources.pull import parse_manifest
from neurodesk.sources.registry import OCI_MANIFEST, Registry, RegistryAddress
from neurodesk.store import ImageRecord, Store

UPLOAD_WORKERS = 3


@dataclass(frozen=True)
class PushResult:
    reference: str
    digest: str
    uploaded: int
    skipped: int


def manifest_of(store: Store, record: ImageRecord) -> tuple[bytes, str]:
    path = store.blob_path(record.digest)
    if not path.is_file():
        raise NeurodeskError(
            f"the store has no manifest for {record.id} (stored by an older neurodesk)",
            hint=f"rebuild or re-fetch it: neurodesk build {record.name}",
        )
    raw = path.read_bytes()
    media_type = str(json.loads(raw).get("mediaType") or OCI_MANIFEST)
    return raw, media_type


def push_image(
    store: Store,
    record: ImageRecord,
    target: str,
    insecure: bool = False,
    timeout: float = 30.0,
    retries: int = 3,
    progress: TransferProgress | None = None,
) -> PushResult:
    progress = progress or NullProgress()
    address = RegistryAddress.parse(target, insecure)
    registry = Registry(address, timeout)
    mirrors: MirrorSet[Registry] = MirrorSet([registry], lambda r: r.ping(), retries=retries)
    repo = address.repo(f"{record.name}_{record.version}")
    raw, media_type = manifest_of(store, record)
    config, layers = parse_manifest(raw)
    try:
        mirrors.attempt(lambda r: r.ping(), f"reaching {address}")

        def one(descriptor_digest: str, size: int) -> bool:
            if mirrors.attempt(
                lambda r: r.blob_exists(repo, descriptor_digest), f"HEAD {descriptor_digest}"
            ):
                return False
            progress.add(descriptor_digest, descriptor_digest[7:19], size)
            # Rebuilt or fetched again (by digest, verified) if the store did not keep it.
            with layer_blob(store, descriptor_digest, size) as blob:
                mirrors.attempt(
                    lambda r: r.upload_blob(
                        repo,
                        descriptor_digest,
                        blob,
                        lambda n: progress.advance(descriptor_digest, n),
                    ),
                    f"upload {descriptor_digest[:19]}",
                )
            return True

        unique = {d.digest: d.size for d in (config, *layers)}
        with ThreadPoolExecutor(max_workers=UPLOAD_WORKERS) as pool:
            futures = [pool.submit(one, digest, size) for digest, size in unique.items()]
            sent = [f.result() for f in futures]
        digest = mirrors.attempt(
            lambda r: r.put_manifest(repo, record.builddate, raw, media_type),
            f"manifest of {repo}",
        )
        # Success is what the registry gives back, not what it says: read the tag again.
        _raw, _type, stored = mirrors.attempt(
            lambda r: r.manifest(repo, record.builddate), f"reading back {repo}"
        )
        if stored != digest or digest != record.digest:
            raise SourceError(
                f"{address}: {repo}:{record.builddate} reads back as {stored}, "
                f"not the pushed {record.digest}",
                hint="the registry did not store the image; check it and publish again",
            )
    finally:
        registry.close()
    return PushResult(
        f"{address.host}/{repo}:{record.builddate}", digest, sum(sent), len(sent) - sum(sent)
    )
