"""SIF files attached to registry images as OCI 1.1 referrer artifacts.

Upstream publishes each container's SIF as an artifact (``artifactType``
``application/vnd.sylabs.sif.layer.v1.sif``) whose ``subject`` is the image
``<ns>/<name>:<version>_<date>``. A registry with the Referrers API lists it at
``GET /v2/<repo>/referrers/<image digest>``; one without it keeps the list as an image index
under the tag ``sha256-<hex of the image digest>`` (the referrers tag schema). Both are read
here; everything found is checked (digests, sizes, types) before it is believed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from neurodesk.sources.http import expect_status, parse_object
from neurodesk.sources.registry import Registry
from neurodesk.sources.transfer import MissingError, SourceError

SIF_ARTIFACT = "application/vnd.sylabs.sif.layer.v1.sif"
INDEX = "application/vnd.oci.image.index.v1+json"
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class SifArtifact:
    """Where a SIF blob is: ``repo`` and its layer ``digest``/``size``; ``via`` says how it was
    found ("referrers API" or "tag schema")."""

    repo: str
    subject: str
    manifest: str
    digest: str
    size: int
    via: str


def tag_schema_tag(digest: str) -> str:
    """``sha256:<hex>`` → ``sha256-<hex>``."""
    return digest.replace(":", "-", 1)


def _json(raw: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        raise SourceError(f"{what}: the registry answered something that is not JSON") from None
    if not isinstance(data, dict):
        raise SourceError(f"{what}: not a JSON object")
    return data


def _sif_entries(index: dict[str, Any]) -> list[dict[str, Any]]:
    entries = index.get("manifests") or []
    return [
        e
        for e in entries
        if isinstance(e, dict)
        and e.get("artifactType") == SIF_ARTIFACT
        and isinstance(e.get("digest"), str)
        and _DIGEST.match(e["digest"])
    ]


def _referrers_api(registry: Registry, repo: str, subject: str) -> list[dict[str, Any]] | None:
    """Entries from the Referrers API, or None when the registry does not have it."""
    response = registry.request(
        "GET",
        f"/v2/{repo}/referrers/{subject}",
        scope=f"repository:{repo}:pull",
        params={"artifactType": SIF_ARTIFACT},
        headers={"Accept": INDEX},
    )
    if response.status in (404, 400, 405, 501):
        return None  # no API: the tag schema is the fallback the spec names
    expect_status(response, 200)
    if response.content_type != INDEX:
        return None
    return _sif_entries(parse_object(response.content, response.mirror, response.what))


def _tag_schema(registry: Registry, repo: str, subject: str) -> list[dict[str, Any]]:
    try:
        raw, _media, _digest = registry.manifest(repo, tag_schema_tag(subject))
    except MissingError:
        return []
    return _sif_entries(_json(raw, f"{repo}:{tag_schema_tag(subject)}"))


def find_sif(registry: Registry, repo: str, reference: str) -> SifArtifact:
    """The SIF artifact referring to ``repo:reference``; MissingError when there is none."""
    _raw, _media, subject = registry.manifest(repo, reference)
    entries = _referrers_api(registry, repo, subject)
    via = "referrers API"
    if entries is None:
        entries, via = _tag_schema(registry, repo, subject), "tag schema"
    if not entries:
        raise MissingError(f"{repo}:{reference} has no SIF artifact ({via})")
    # Newest first when the publisher dated them; else the last one listed.
    entries.sort(
        key=lambda e: str((e.get("annotations") or {}).get("org.opencontainers.image.created", ""))
    )
    chosen = entries[-1]
    raw, _media, manifest_digest = registry.manifest(repo, chosen["digest"])
    manifest = _json(raw, f"SIF artifact {chosen['digest'][:19]}")
    layers = [
        layer
        for layer in manifest.get("layers") or []
        if isinstance(layer, dict)
        and layer.get("mediaType") == SIF_ARTIFACT
        and isinstance(layer.get("digest"), str)
        and _DIGEST.match(layer["digest"])
        and isinstance(layer.get("size"), int)
        and layer["size"] > 0
    ]
    if len(layers) != 1:
        raise SourceError(f"SIF artifact of {repo}:{reference} holds {len(layers)} SIF layers")
    return SifArtifact(
        repo, subject, manifest_digest, layers[0]["digest"], int(layers[0]["size"]), via
    )
