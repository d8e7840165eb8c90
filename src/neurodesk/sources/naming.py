"""Image specs (``NAME[/VERSION[/BUILDDATE]]``) and choosing among available versions."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from neurodesk.store.version import version_key

BUILDDATE = re.compile(r"^\d{8}$")


@dataclass(frozen=True)
class Spec:
    name: str
    version: str = ""
    builddate: str = ""

    @classmethod
    def parse(cls, text: str) -> Spec:
        name, _, rest = text.partition("/")
        version, _, builddate = rest.partition("/")
        return cls(name, version, builddate)

    def matches(self, name: str, version: str, builddate: str) -> bool:
        return (
            name == self.name
            and (not self.version or version == self.version)
            and (not self.builddate or builddate == self.builddate)
        )

    def __str__(self) -> str:
        return "/".join(p for p in (self.name, self.version, self.builddate) if p)


@dataclass(frozen=True)
class Available:
    """One image a source offers; ``where`` is source-specific (a repo:tag, a path, a ref)."""

    name: str
    version: str
    builddate: str
    where: str

    @property
    def id(self) -> str:
        return f"{self.name}_{self.version}_{self.builddate}"


def newest(candidates: Iterable[Available], spec: Spec) -> Available | None:
    matching = [c for c in candidates if spec.matches(c.name, c.version, c.builddate)]
    if not matching:
        return None
    return max(matching, key=lambda c: (version_key(c.version), c.builddate))


def split_id(image_id: str, name: str | None = None) -> tuple[str, str, str] | None:
    """``<name>_<version>_<builddate>`` → parts. Upstream names have no ``_``; when the caller
    knows the name, names with ``_`` work too."""
    if name is not None:
        if not image_id.startswith(name + "_"):
            return None
        version, sep, builddate = image_id[len(name) + 1 :].rpartition("_")
    else:
        head, sep, builddate = image_id.rpartition("_")
        name, _, version = head.partition("_")
    if not sep or not name or not version or not BUILDDATE.match(builddate):
        return None
    return name, version, builddate
