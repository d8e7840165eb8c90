"""Resolvable references to an image, and the places an image was seen being offered.

A reference names an image so that someone else can fetch exactly it:

* ``HOST[:PORT]/NS/<name>_<version>:<builddate>@sha256:<hex>`` when a registry is known to
  serve that digest (an OCI reference: ``skopeo``/``podman``/``neurodesk sync`` can pull it);
* ``<name>_<version>_<builddate>@sha256:<hex>`` otherwise: the catalog's id plus the digest,
  which ``neurodesk sync`` resolves through the configured sources and then verifies.

Where an image was seen (by ``lock`` asking the sources, or by ``sync`` fetching it) is kept in
``$NEURODESK_HOME/repro/origins/<hex>.json`` so that offline commands (``batch summary``,
records of batch tasks) can name a registry without asking the network.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from neurodesk.errors import ValidationError
from neurodesk.paths import Paths
from neurodesk.store.atomic import write_text

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# registry/ns/name_version:date@digest   or   name_version_date@digest
_REFERENCE = re.compile(
    r"^(?:(?P<location>[A-Za-z0-9.\-]+(?::\d+)?(?:/[A-Za-z0-9._\-/]+)?)/"
    r"(?P<repo>[A-Za-z0-9._\-]+):(?P<tag>[A-Za-z0-9._\-]+)"
    r"|(?P<id>[A-Za-z0-9._\-]+))@(?P<digest>sha256:[0-9a-f]{64})$"
)


@dataclass(frozen=True)
class Reference:
    """A parsed reference; ``location`` is ``HOST[:PORT]/NS`` or empty (catalog id only)."""

    digest: str
    location: str = ""
    repo: str = ""  # <name>_<version>
    tag: str = ""  # <builddate>
    id: str = ""  # <name>_<version>_<builddate>

    @classmethod
    def parse(cls, text: str) -> Reference:
        match = _REFERENCE.match(text.strip())
        if match is None:
            raise ValidationError(
                f"'{text}' is not an image reference",
                [],
                hint="write HOST/NS/NAME_VERSION:DATE@sha256:HEX or NAME_VERSION_DATE@sha256:HEX",
            )
        if match["id"]:
            return cls(match["digest"], id=match["id"])
        return cls(match["digest"], match["location"], match["repo"], match["tag"])

    def __str__(self) -> str:
        if self.location:
            return f"{self.location}/{self.repo}:{self.tag}@{self.digest}"
        return f"{self.id}@{self.digest}"


def check_digest(digest: str) -> str:
    if not DIGEST.match(digest):
        raise ValidationError(
            f"'{digest}' is not a sha256 digest", [], hint="write sha256: and 64 hex digits"
        )
    return digest


def registry_reference(location: str, name: str, version: str, builddate: str, digest: str) -> str:
    return str(Reference(check_digest(digest), location.strip("/"), f"{name}_{version}", builddate))


def catalog_reference(image_id: str, digest: str) -> str:
    return str(Reference(check_digest(digest), id=image_id))


def _origins_file(paths: Paths, digest: str) -> Path:
    return paths.home / "repro" / "origins" / f"{check_digest(digest).removeprefix('sha256:')}.json"


def known_references(paths: Paths, digest: str) -> list[str]:
    """Registry references this digest was seen at, most recent first (none when unknown)."""
    try:
        data = json.loads(_origins_file(paths, digest).read_text())
    except (OSError, ValueError):
        return []
    refs = data.get("references") if isinstance(data, dict) else None
    out = []
    for ref in refs if isinstance(refs, list) else []:
        try:
            if isinstance(ref, str) and Reference.parse(ref).digest == digest:
                out.append(ref)
        except ValidationError:
            continue
    return out


def remember_reference(paths: Paths, reference: str) -> None:
    """Note that ``reference`` (a registry reference) serves its digest."""
    parsed = Reference.parse(reference)
    if not parsed.location:
        return
    old = known_references(paths, parsed.digest)
    refs = [reference, *(r for r in old if r != reference)]
    write_text(_origins_file(paths, parsed.digest), json.dumps({"references": refs}, indent=2))


def best_reference(paths: Paths, image_id: str, digest: str) -> str:
    """The registry reference last seen for ``digest``, else the catalog id plus digest."""
    if not DIGEST.match(digest):  # not a content digest: nothing can resolve it, say it as is
        return f"{image_id}@{digest}"
    known = known_references(paths, digest)
    return known[0] if known else catalog_reference(image_id, digest)


def is_registry_reference(text: str) -> bool:
    try:
        return bool(Reference.parse(text).location)
    except ValidationError:
        return False
