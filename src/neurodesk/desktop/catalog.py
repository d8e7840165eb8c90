"""The tools the desktop panel shows: shipped recipes, images in the store, installed wrappers.

One entry per tool version. Its state says how far it has come: ``available`` (a recipe, not
built), ``built`` (an image in the store), ``installed`` (wrappers written). Categories come from
the ``/build.yaml`` each image carries (what was built), else from the recipe.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _categories(build_yaml: Path) -> list[str]:
    """The ``categories`` of a build.yaml, tolerating anything malformed (the panel must load)."""
    try:
        data = yaml.safe_load(build_yaml.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return [UNCATEGORISED]
    found = data.get("categories") if isinstance(data, dict) else None
    if not isinstance(found, list):
        return [UNCATEGORISED]
    return [str(c) for c in found] or [UNCATEGORISED]


def _recipe_versions(root: Path) -> list[tuple[str, str, Path]]:
    out = []
    for build_yaml in sorted(root.glob("*/build.yaml")):
        try:
            data = yaml.safe_load(build_yaml.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and data.get("name") and data.get("version"):
            out.append((str(data["name"]), str(data["version"]), build_yaml))
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
    for name, version, build_yaml in _recipe_versions(recipes or recipes_dir()):
        tools[(name, version)] = Tool(name, version, "available", _categories(build_yaml))
    for record in newest_images(Store(paths.store)):
        inst = by_id.get(record.id)
        categories = _categories(record.rootfs / "build.yaml")
        tools[(record.name, record.version)] = Tool(
            record.name,
            record.version,
            "installed" if inst else "built",
            categories,
            image_id=record.id,
            commands=inst.commands if inst else [],
            bin_dir=str(inst.bin_dir) if inst else None,
            kernel=kernels.get(record.id),
        )
    return sorted(tools.values(), key=lambda t: (t.name, version_key(t.version)))


def by_category(tools: list[Tool]) -> dict[str, list[Tool]]:
    """Category → tools; a tool with several categories appears under each."""
    groups: dict[str, list[Tool]] = {}
    for tool in tools:
        for category in tool.categories:
            groups.setdefault(category, []).append(tool)
    return dict(sorted(groups.items()))
