"""Attach a SIF file to a registry image as an OCI 1.1 referrer artifact, as upstream does.

The artifact is an image manifest with ``artifactType`` ``application/vnd.sylabs.sif.layer.v1.sif``,
the empty config, one layer (the SIF) and a ``subject`` naming the image. A registry with the
Referrers API indexes it by itself (it answers the manifest PUT with an ``OCI-Subject``
header); for one without, the referrers index under the tag ``sha256-<hex of the image
digest>`` is read, extended and written back (the tag schema). Either way, what was pushed is
read back through :func:`neurodesk.sources.referrers.find_sif` before success is reported.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurodesk.errors import NeurodeskError
from neurodesk.sources.http import parse_object
from neurodesk.sources.referrers import INDEX, SIF_ARTIFACT, find_sif, tag_schema_tag
from neurodesk.sources.registry import OCI_MANIFEST, Registry
from neurodesk.sources.transfer import MissingError, OnBytes

EMPTY_CONFIG = b"{}"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"


@dataclass(frozen=True)
class SifPush:
    repo: str
    subject: str
    artifact: str  # the artifact manifest's digest
    sif_digest: str
    size: int
    via: str  # "referrers API" or "tag schema"


def _digest_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


def _descriptor(media_type: str, digest: str, size: int, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest, "size": size, **extra}


def push_sif_artifact(
    registry: Registry,
    repo: str,
    reference: str,
    sif: Path,
    title: str,
    on_bytes: OnBytes | None = None,
) -> SifPush:
    """Push ``sif`` as the SIF artifact of ``repo:reference`` (which must exist)."""
    subject_raw, subject_type, subject = registry.manifest(repo, reference)
    sif_digest, size = _digest_file(sif), sif.stat().st_size
    empty = "sha256:" + hashlib.sha256(EMPTY_CONFIG).hexdigest()
    if not registry.blob_exists(repo, empty):
        tmp = sif.with_name(f".{sif.name}.empty")
        tmp.write_bytes(EMPTY_CONFIG)
        try:
            registry.upload_blob(repo, empty, tmp)
        finally:
            tmp.unlink(missing_ok=True)
    if not registry.blob_exists(repo, sif_digest):
        registry.upload_blob(repo, sif_digest, sif, on_bytes)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SIF_ARTIFACT,
        "config": _descriptor(EMPTY_TYPE, empty, len(EMPTY_CONFIG)),
        "layers": [
            _descriptor(
                SIF_ARTIFACT,
                sif_digest,
                size,
                annotations={"org.opencontainers.image.title": title},
            )
        ],
        "subject": _descriptor(subject_type, subject, len(subject_raw)),
        "annotations": {"org.opencontainers.image.created": created},
    }
    raw = json.dumps(manifest, separators=(",", ":")).encode()
    artifact = "sha256:" + hashlib.sha256(raw).hexdigest()
    answer = registry.request(
        "PUT",
        f"/v2/{repo}/manifests/{artifact}",
        scope=f"repository:{repo}:pull,push",
        content=raw,
        headers={"Content-Type": OCI_MANIFEST},
    )
    if answer.status != 201:
        raise NeurodeskError(
            f"{registry}: refused the SIF artifact of {repo}:{reference} (HTTP {answer.status})",
            hint="the registry may not accept OCI artifacts; check its version and your rights",
        )
    via = "referrers API"
    if not answer.headers.get("OCI-Subject"):
        via = "tag schema"
        add_to_tag_schema(registry, repo, subject, artifact, len(raw), created)
    found = find_sif(registry, repo, reference)
    if found.digest != sif_digest:
        raise NeurodeskError(
            f"{registry}: {repo}:{reference} lists SIF {found.digest[:19]} after the push of "
            f"{sif_digest[:19]}",
            hint="another SIF artifact is newer; remove it or push again",
        )
    return SifPush(repo, subject, artifact, sif_digest, size, via)


def add_to_tag_schema(
    registry: Registry, repo: str, subject: str, artifact: str, size: int, created: str
) -> None:
    tag = tag_schema_tag(subject)
    try:
        raw, _media, _digest = registry.manifest(repo, tag)
        index = parse_object(raw, str(registry), f"{repo}:{tag}")
    except MissingError:
        index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": []}
    entries = [
        e
        for e in index.get("manifests") or []
        if isinstance(e, dict) and e.get("digest") != artifact
    ]
    entries.append(
        _descriptor(
            OCI_MANIFEST,
            artifact,
            size,
            artifactType=SIF_ARTIFACT,
            annotations={"org.opencontainers.image.created": created},
        )
    )
    index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": entries}
    registry.put_manifest(repo, tag, json.dumps(index, separators=(",", ":")).encode(), INDEX)
