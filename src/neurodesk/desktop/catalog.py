"""The tools the desktop panel shows: shipped recipes, images in the store, installed wrappers.

One entry per tool version. Its state says how far it has come: ``available`` (a recipe, not
built), ``built`` (an image in the store), ``installed`` (wrappers written). Categories come from
the ``/build.yaml`` each image carries (what was built), else from the recipe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from neurodesk.catalog.collect import Tool as CatalogTool
from neurodesk.desktop.labels import category_label
from neurodesk.install.installer import installed
from neurodesk.paths import Paths
from neurodesk.recipe.load import recipes_dir
from neurodesk.store import ImageRecord, Store
from neurodesk.store.version import version_key

State = Literal["available", "built", "installed"]
UNCATEGORISED = "other"


@dataclass
class Tool:
    name: str
    version: str
    state: State
    categories: list[str]
    image_id: str | None = None
    commands: list[str] = field(default_factory=list)
    bin_dir: str | None = None
    kernel: str | None = None
    gui_apps: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _read_yaml(build_yaml: Path) -> dict[str, Any]:
    """A build.yaml as data, or {} when unreadable (the panel must load whatever is there)."""
    try:
        data = yaml.safe_load(build_yaml.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _categories(data: dict[str, Any]) -> list[str]:
    found = data.get("categories")
    if not isinstance(found, list):
        return [UNCATEGORISED]
    return [str(c) for c in found] or [UNCATEGORISED]


def _gui_apps(data: dict[str, Any]) -> list[dict[str, str]]:
    """``gui_apps`` entries that have both a name and a command line."""
    found = data.get("gui_apps")
    if not isinstance(found, list):
        return []
    return [
        {"name": str(app["name"]), "exec": str(app["exec"])}
        for app in found
        if isinstance(app, dict) and app.get("name") and app.get("exec")
    ]


def _recipes(root: Path) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for build_yaml in sorted(root.glob("*/build.yaml")):
        data = _read_yaml(build_yaml)
        if data.get("name") and data.get("version"):
            out.append((str(data["name"]), str(data["version"]), data))
    return out


def newest_images(store: Store) -> list[ImageRecord]:
    """The newest build of each name/version."""
    newest: dict[tuple[str, str], ImageRecord] = {}
    for record in store.images():  # sorted by name, version, builddate
        newest[(record.name, record.version)] = record
    return list(newest.values())


def list_tools(
    paths: Paths, recipes: Path | None = None, kernels: dict[str, str] | None = None
) -> list[Tool]:
    """Every tool version we know about, newest state first wins; sorted by name and version.

    ``kernels`` maps an image id to the name of the kernelspec written for it.
    """
    kernels = kernels or {}
    by_id = {i.image_id: i for i in installed(paths.installs)}
    tools: dict[tuple[str, str], Tool] = {}
    for name, version, data in _recipes(recipes or recipes_dir()):
        tools[(name, version)] = Tool(
            name, version, "available", _categories(data), gui_apps=_gui_apps(data)
        )
    for record in newest_images(Store(paths.store)):
        inst = by_id.get(record.id)
        data = _read_yaml(record.rootfs / "build.yaml")
        tools[(record.name, record.version)] = Tool(
            record.name,
            record.version,
            "installed" if inst else "built",
            _categories(data),
            image_id=record.id,
            commands=inst.commands if inst else [],
            bin_dir=str(inst.bin_dir) if inst else None,
            kernel=kernels.get(record.id),
            gui_apps=_gui_apps(data),
        )
    return sorted(tools.values(), key=lambda t: (t.name, version_key(t.version)))


def by_category(tools: list[Tool]) -> dict[str, list[Tool]]:
    """Category → tools; a tool with several categories appears under each."""
    groups: dict[str, list[Tool]] = {}
    for tool in tools:
        for category in tool.categories:
            groups.setdefault(category, []).append(tool)
    return dict(sorted(groups.items()))


# -- the tools panel: one entry per tool, its versions, what the catalog knows about it ---------


def citation_of(readme: str) -> str:
    """The paragraph of a README that says what to cite ('Citation: ...', '## Citation')."""
    lines = readme.splitlines()
    for index, line in enumerate(lines):
        stripped = line.strip().lstrip("#").strip()
        if not stripped.lower().startswith(("citation", "cite", "please cite", "reference")):
            continue
        head, _, rest = stripped.partition(":")
        paragraph = [rest.strip()] if rest.strip() else []
        for following in lines[index + 1 :]:
            if not following.strip() or following.lstrip().startswith("#"):
                if paragraph:
                    break
                continue
            paragraph.append(following.strip())
        if paragraph and len(head) < 30:
            return " ".join(paragraph)
    return ""


@dataclass
class PanelVersion:
    """One version of a tool, and how far it has come on this machine."""

    version: str
    state: str  # available (a recipe or a source has it) | built | installed
    image_id: str | None = None
    bin_dir: str | None = None
    commands: list[str] = field(default_factory=list)
    kernel: str | None = None
    gui_apps: list[dict[str, str]] = field(default_factory=list)
    loaded: bool = False


@dataclass
class PanelTool:
    name: str
    description: str
    readme: str
    citation: str
    licenses: list[str]
    sources: list[str]  # "recipes", "store", or the names of configured sources / catalogs
    categories: list[str]
    commands: list[str]
    versions: list[PanelVersion]
    draft: bool = False  # a draft recipe or test image: hidden unless asked for

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["category_labels"] = [category_label(c) for c in self.categories]
        return data


def _drafts(paths: Paths, recipes: Path | None) -> set[str]:
    """Names whose recipe or built image says ``draft: true``."""
    found = {n for n, _v, data in _recipes(recipes or recipes_dir()) if data.get("draft") is True}
    for record in newest_images(Store(paths.store)):
        if _read_yaml(record.rootfs / "build.yaml").get("draft") is True:
            found.add(record.name)
    return found


def panel_tools(
    paths: Paths,
    catalog: Mapping[str, CatalogTool],
    *,
    kernels: dict[str, str] | None = None,
    loaded: set[str] | None = None,
    recipes: Path | None = None,
) -> list[PanelTool]:
    """Catalog tools (``neurodesk.catalog`` Tool objects, by name) merged with what is here.

    Versions come from both: the catalog's offers (recipes, store, configured sources and
    upstream catalogs) and this machine's states (built, installed, loaded, kernel).
    """
    here = list_tools(paths, recipes, kernels)
    loaded = loaded or set()
    drafts = _drafts(paths, recipes)
    local: dict[str, dict[str, Tool]] = {}
    for tool in here:
        local.setdefault(tool.name, {})[tool.version] = tool
    out = []
    for name in sorted(set(catalog) | set(local), key=str.lower):
        entry = catalog.get(name)
        versions: dict[str, PanelVersion] = {}
        for version in entry.versions if entry else []:
            versions[version] = PanelVersion(version, "available")
        for version, tool in local.get(name, {}).items():
            versions[version] = PanelVersion(
                version,
                tool.state,
                tool.image_id,
                tool.bin_dir,
                tool.commands,
                tool.kernel,
                tool.gui_apps,
                loaded=bool(tool.bin_dir and tool.bin_dir in loaded),
            )
        readme = entry.readme if entry else ""
        categories = list(entry.categories) if entry else []
        for tool in local.get(name, {}).values():
            categories += [c for c in tool.categories if c not in categories]
        if len(categories) > 1:
            categories = [c for c in categories if c != UNCATEGORISED]
        sources = list(entry.sources) if entry else []
        out.append(
            PanelTool(
                name=name,
                description=entry.description if entry else "",
                readme=readme,
                citation=str(getattr(entry, "citation", "") or "") or citation_of(readme),
                licenses=list(entry.licenses) if entry else [],
                sources=sources or ["store"],
                categories=sorted(set(categories), key=str.lower),
                commands=(list(entry.commands) if entry else [])
                or sorted({c for t in local.get(name, {}).values() for c in t.commands}),
                versions=sorted(versions.values(), key=lambda v: version_key(v.version)),
                draft=name in drafts,
            )
        )
    return out
