"""Upstream's catalog files: ``releases/<name>/<version>.json``, ``apps.json`` and ``log.txt``.

The formats are neurocommand's and neurocontainers' (facts, see DESIGN.md):

* a *release* file, one per built recipe version, holds that version's menu entries and the
  recipe's categories::

    {"apps": {"<name> <version>": {"version": "<builddate>", "exec": ""},
              "<gui name>-<name> <version>": {"version": "<builddate>", "exec": "<cmd>"}},
     "categories": ["..."]}

  where a GUI name is the recipe's ``gui_apps[].name`` (by convention ``<exe>GUI``, e.g.
  ``mrviewGUI``); note that ``version`` holds the *build date*;
* ``apps.json`` maps a menu name — upstream uses the recipe name, e.g. ``"mrtrix3"`` — to the
  same ``{"apps": ..., "categories": ...}`` shape, merging every released version of that recipe;
* ``log.txt`` has one line per container (GUI entries are not containers):
  ``<name>_<version>_<builddate> categories:<c1>,<c2>,`` (note the trailing comma).

Typical use::

    files = CatalogFiles(root)                       # root/releases, root/apps.json, root/log.txt
    files.write_release("dcm2niix", "1.0", Release.for_build("dcm2niix", "1.0", "20240101", [...]))
    files.regenerate()                               # apps.json and log.txt from root/releases

Every file is written to a temporary name and renamed, so readers never see half a file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, RootModel
from pydantic import ValidationError as PydanticValidationError

from neurodesk.errors import ValidationError
from neurodesk.store.atomic import write_text

BUILDDATE = re.compile(r"^\d{8}$")
_LOG_LINE = re.compile(r"^(?P<id>\S+) categories:(?P<cats>.*)$")


class AppEntry(BaseModel):
    """One menu entry: ``version`` is the build date (YYYYMMDD), ``exec`` the GUI command."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(pattern=BUILDDATE.pattern)
    exec: str = ""
    # Today's upstream entries also carry the container's runtime options and, for an aarch64
    # build, its architecture and image name (``<name>_<version>_arm64``).
    apptainer_args: list[str] | None = None
    architecture: str | None = None
    image: str | None = None


class Release(BaseModel):
    """The menu entries and categories of one recipe version (also one apps.json menu)."""

    model_config = ConfigDict(extra="forbid")

    apps: dict[str, AppEntry] = Field(default_factory=dict)
    categories: list[str] = Field(default_factory=list)
    variant: str | None = None
    architecture: str | None = None
    show_in_menu: bool | None = None
    show_in_applist: bool | None = None

    @classmethod
    def for_build(
        cls,
        name: str,
        version: str,
        builddate: str,
        categories: Sequence[str],
        gui_apps: Iterable[tuple[str, str]] = (),
        *,
        apptainer_args: Sequence[str] | None = None,
        architecture: str | None = None,
        variant: str | None = None,
        show_in_menu: bool | None = None,
        show_in_applist: bool | None = None,
    ) -> Release:
        """The release of a fresh build; ``gui_apps`` are ``(gui name, command)`` pairs.

        As upstream: an aarch64 build of the default variant is listed as ``<name> <version>
        arm64`` with its ``architecture`` and ``image``; a named variant (``name`` is then e.g.
        ``fsl_gpu``) records ``variant`` and ``architecture`` at the top level.
        """
        arm = architecture == "aarch64" and not variant
        shown = f"{version} arm64" if arm else version
        extra: dict[str, object] = {}
        if apptainer_args is not None:
            extra["apptainer_args"] = list(apptainer_args)
        if arm:
            extra.update(architecture="aarch64", image=f"{name}_{version}_arm64")
        apps = {app_key(name, shown): AppEntry(version=builddate, **extra)}  # type: ignore[arg-type]
        for gui_name, command in gui_apps:
            apps[app_key(name, shown, gui_name)] = AppEntry(
                version=builddate,
                exec=command,
                **extra,  # type: ignore[arg-type]
            )
        return cls(
            apps=apps,
            categories=list(categories),
            variant=variant or None,
            architecture="aarch64" if arm else (architecture if variant else None),
            show_in_menu=show_in_menu,
            show_in_applist=show_in_applist,
        )


def release_file_version(version: str, architecture: str | None, variant: str | None) -> str:
    """The file name version of a release: ``<version>-arm64`` for a default aarch64 build."""
    return f"{version}-arm64" if architecture == "aarch64" and not variant else version


class AppsJson(RootModel[dict[str, Release]]):
    """The whole ``apps.json``: menu name → its apps of every version, and its categories."""

    root: dict[str, Release] = Field(default_factory=dict)


@dataclass(frozen=True)
class Container:
    """One line of ``log.txt``: a built container and its categories."""

    name: str
    version: str
    builddate: str
    categories: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.name}_{self.version}_{self.builddate}"


def app_key(name: str, version: str, gui_name: str | None = None) -> str:
    """``"mrtrix3 3.0.4"``, or ``"mrviewGUI-mrtrix3 3.0.4"`` for a GUI entry."""
    return f"{gui_name}-{name} {version}" if gui_name else f"{name} {version}"


def split_app_key(key: str) -> tuple[str | None, str, str]:
    """``"mrviewGUI-mrtrix3 3.0.4"`` → ``("mrviewGUI", "mrtrix3", "3.0.4")``.

    Upstream recipe names and versions contain no space; a GUI name is whatever precedes the
    last ``-`` of the first word when that word contains ``GUI-``.
    """
    head, _, version = key.partition(" ")
    gui, sep, name = head.rpartition("-")
    if sep and "GUI" in gui:
        return gui, name, version
    return None, head, version


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Natural order for versions: ``1.10`` after ``1.9``, ``v1.0.2024`` by its numbers."""
    parts = re.findall(r"\d+|[^\d.\-_+~]+", version)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


# ---------------------------------------------------------------- reading and writing files


M = TypeVar("M", bound=BaseModel)


def _load_json(path: Path, model: type[M]) -> M:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        line = f"{path}:{exc.lineno}: {exc.msg}"
        raise ValidationError(line, [line], hint="fix the JSON syntax") from None
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        problems = [
            f"{path}: {'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ValidationError(problems[0], problems, hint="see the apps.json format") from None


def load_release(path: Path) -> Release:
    """Read one ``releases/<name>/<version>.json``."""
    return _load_json(path, Release)


def dump_release(release: Release) -> str:
    # Upstream's release files: two-space indent, no trailing newline, no empty optional keys.
    return json.dumps(release.model_dump(exclude_none=True), indent=2)


def load_apps_json(path: Path) -> AppsJson:
    """Read an ``apps.json``; a missing file is an empty catalog."""
    if not path.exists():
        return AppsJson({})
    return _load_json(path, AppsJson)


def dump_apps_json(apps: AppsJson) -> str:
    # Upstream's apps.json: four-space indent.
    return json.dumps(apps.model_dump(exclude_none=True), indent=4) + "\n"


def save_apps_json(path: Path, apps: AppsJson) -> None:
    write_text(path, dump_apps_json(apps))


def parse_log(text: str) -> list[Container]:
    """Parse ``log.txt``. The id is split at its last two ``_`` (dates and versions have none
    in upstream, names may in ours only if the caller knows them: see DESIGN.md)."""
    out: list[Container] = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        match = _LOG_LINE.match(raw.strip())
        parts = match.group("id").rsplit("_", 2) if match else []
        if match is None or len(parts) != 3 or not BUILDDATE.match(parts[2]):
            line = f"log.txt:{number}: expected '<name>_<version>_<builddate> categories:...'"
            raise ValidationError(line, [line])
        cats = tuple(c for c in match.group("cats").split(",") if c)
        out.append(Container(parts[0], parts[1], parts[2], cats))
    return out


def render_log(containers: Iterable[Container]) -> str:
    return "".join(
        f"{c.id} categories:{''.join(x + ',' for x in c.categories)}\n" for c in containers
    )


# ---------------------------------------------------------------- merging


def merge_release(apps: AppsJson, name: str, release: Release) -> AppsJson:
    """Add (or replace) ``release``'s entries in menu ``name``; returns a new AppsJson.

    The menu's categories become the release's: merge releases oldest first (as
    :func:`build_apps_json` does) so the newest recipe's categories win. Entries of the same
    version that the new release no longer has (a removed GUI app) are dropped.
    """
    menus = {k: v.model_copy(deep=True) for k, v in apps.root.items()}
    menu = menus.setdefault(name, Release())
    versions = {split_app_key(key)[2] for key in release.apps}
    kept = {k: v for k, v in menu.apps.items() if split_app_key(k)[2] not in versions}
    merged = {**kept, **{k: v.model_copy() for k, v in release.apps.items()}}
    # Versions in natural order, each version's main entry before its GUI entries.
    order = sorted(
        merged, key=lambda k: (version_key(split_app_key(k)[2]), split_app_key(k)[0] or "")
    )
    menu.apps = {k: merged[k] for k in order}
    menu.categories = list(release.categories)
    return AppsJson({k: menus[k] for k in sorted(menus)})


def containers(apps: AppsJson) -> list[Container]:
    """The containers of a catalog (one per non-GUI entry), in ``log.txt`` order."""
    out = []
    for menu in apps.root.values():
        for key, entry in menu.apps.items():
            gui, name, version = split_app_key(key)
            if gui is None:
                out.append(Container(name, version, entry.version, tuple(menu.categories)))
    return sorted(out, key=lambda c: (c.name, version_key(c.version), c.builddate))


# ---------------------------------------------------------------- a releases directory


@dataclass(frozen=True)
class CatalogFiles:
    """A catalog root: ``releases/<name>/<version>.json``, ``apps.json`` and ``log.txt``.

    The default root is ``$NEURODESK_HOME/catalog`` (:meth:`default`); ``neurodesk build
    --releases DIR`` points it at a checkout instead.
    """

    root: Path

    @classmethod
    def default(cls, home: Path) -> CatalogFiles:
        return cls(home / "catalog")

    @property
    def releases(self) -> Path:
        return self.root / "releases"

    @property
    def apps_json(self) -> Path:
        return self.root / "apps.json"

    @property
    def log_txt(self) -> Path:
        return self.root / "log.txt"

    def release_path(self, name: str, version: str) -> Path:
        return self.releases / name / f"{version}.json"

    def write_release(self, name: str, version: str, release: Release) -> Path:
        path = self.release_path(name, version)
        write_text(path, dump_release(release))
        return path

    def iter_releases(self) -> Iterator[tuple[str, str, Release]]:
        """Every ``(name, version, release)`` under ``releases/``, sorted by name and version."""
        found = sorted(
            self.releases.glob("*/*.json"),
            key=lambda p: (p.parent.name, version_key(p.stem)),
        )
        for path in found:
            yield path.parent.name, path.stem, load_release(path)

    def build_apps_json(self) -> AppsJson:
        """apps.json from the releases alone; each menu's categories from its newest build."""
        releases = list(self.iter_releases())
        releases.sort(
            key=lambda r: (r[0], max((e.version for e in r[2].apps.values()), default=""))
        )
        apps = AppsJson({})
        for name, _version, release in releases:
            apps = merge_release(apps, name, release)
        return apps

    def regenerate(self) -> AppsJson:
        """Rewrite ``apps.json`` and ``log.txt`` from ``releases/``; returns the catalog."""
        apps = self.build_apps_json()
        save_apps_json(self.apps_json, apps)
        write_text(self.log_txt, render_log(containers(apps)))
        return apps

    def load(self) -> AppsJson:
        return load_apps_json(self.apps_json)
