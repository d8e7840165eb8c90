"""Upstream's catalog (neurocommand's ``apps.json``): reading the cached copy, fast.

``neurodesk update`` (:mod:`neurodesk.catalog.update`) keeps a copy at
``$NEURODESK_HOME/cache/upstream/apps.json``; everything else reads that copy, so search, list,
info and install work offline. Reading it must stay cheap (``neurodesk search`` over ~400
containers has a budget of 100 ms), so this module uses only the standard library: the JSON is
checked by hand instead of through pydantic.

The format (facts, DESIGN.md): ``{menu: {"apps": {"<name> <version>": {"version": "<date>",
"exec": ""}, "<gui>GUI-<name> <version>": {"version": "<date>", "exec": "<cmd>"}},
"categories": [...]}}``; ``version`` holds the build date, the container id is
``<name>_<version>_<date>``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurodesk.errors import NeurodeskError

_DATE = re.compile(r"^\d{8}$")
# Upstream names and versions: no spaces, no path separators, nothing a shell or file name
# could misread (DESIGN.md, Trust).
_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+\-]*$")
_GUI = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+]*$")
HINT = "run 'neurodesk update' to see every Neurodesk container"


class CatalogError(NeurodeskError):
    """The catalog (downloaded or cached) is not upstream's apps.json format."""


@dataclass(frozen=True)
class Container:
    """One upstream container: ``<name>_<version>_<builddate>``."""

    name: str
    version: str
    builddate: str
    menu: str
    categories: tuple[str, ...]
    gui_apps: tuple[tuple[str, str], ...] = ()  # (menu label, command)

    @property
    def id(self) -> str:
        return f"{self.name}_{self.version}_{self.builddate}"


@dataclass
class UpstreamCatalog:
    containers: list[Container] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # entries that are not containers

    def by_name(self, name: str) -> list[Container]:
        """Versions of ``name``, oldest first."""
        from neurodesk.store.version import version_key

        found = [c for c in self.containers if c.name == name]
        return sorted(found, key=lambda c: (version_key(c.version), c.builddate))

    def names(self) -> list[str]:
        return sorted({c.name for c in self.containers})


def cache_dir(home: Path) -> Path:
    return home / "cache" / "upstream"


def cached_path(home: Path) -> Path:
    return cache_dir(home) / "apps.json"


def meta_path(home: Path) -> Path:
    return cache_dir(home) / "apps.meta.json"


def _fail(where: str, problem: str) -> CatalogError:
    return CatalogError(
        f"{where}: not an apps.json catalog: {problem}",
        hint="run 'neurodesk update' again, or check catalog_url in config.yaml",
    )


def parse(data: Any, where: str) -> UpstreamCatalog:
    """Check ``data`` (decoded JSON) against upstream's format; the first problem is raised."""
    if not isinstance(data, dict):
        raise _fail(where, "the top level is not a mapping of menus")
    out: list[Container] = []
    skipped: list[str] = []
    for menu, body in data.items():
        if not isinstance(body, dict) or not isinstance(body.get("apps"), dict):
            raise _fail(where, f"menu '{str(menu)[:40]}' has no 'apps' mapping")
        cats = body.get("categories") or []
        if not isinstance(cats, list) or not all(isinstance(c, str) for c in cats):
            raise _fail(where, f"menu '{menu}': 'categories' is not a list of names")
        mains: dict[tuple[str, str], str] = {}
        guis: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for key, entry in body["apps"].items():
            date = entry.get("version") if isinstance(entry, dict) else None
            command = entry.get("exec", "") if isinstance(entry, dict) else None
            head, _, version = str(key).partition(" ")
            if not isinstance(entry, dict) or not isinstance(command, str):
                raise _fail(where, f"'{str(key)[:60]}' is not an entry with 'version' and 'exec'")
            gui, sep, name = head.rpartition("-")
            if not (sep and "GUI" in gui):
                gui, name = "", head
            if (
                not isinstance(date, str)
                or not _DATE.match(date)
                or not _WORD.match(name)
                or not _WORD.match(version)
                or (gui and not _GUI.match(gui))
            ):
                # Upstream lists a few entries that are no dated container (e.g. a 'latest'
                # source build); they are left out, and so is anything we could misread.
                skipped.append(str(key)[:80])
                continue
            if gui:
                guis.setdefault((name, version), []).append((gui, command))
            else:
                mains[(name, version)] = date
        for (name, version), date in mains.items():
            gui_apps = tuple(guis.get((name, version), []))
            out.append(Container(name, version, date, str(menu), tuple(cats), gui_apps))
    if not out:
        raise _fail(where, "it lists no containers")
    if len(skipped) > len(out):
        raise _fail(where, f"most entries are malformed (e.g. '{skipped[0]}')")
    return UpstreamCatalog(out, skipped)


def parse_bytes(raw: bytes, where: str) -> UpstreamCatalog:
    head = raw[:512].lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<")):
        raise _fail(where, "it is an HTML page, not JSON (a login page or an error page?)")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise _fail(where, f"invalid JSON{f' at line {line}' if line else ''}") from None
    return parse(data, where)


def load_cached(home: Path) -> UpstreamCatalog | None:
    """The cached catalog, or None when ``neurodesk update`` never ran here."""
    path = cached_path(home)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    return parse_bytes(raw, str(path))


def never_updated_note() -> str:
    return f"note: upstream's catalog is not downloaded yet; {HINT}"
