"""What an image says about itself: its recipe (``/build.yaml``), ``/README.md`` and labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from neurodesk.image.layers import RootFS

README_LIMIT = 64 * 1024


@dataclass(frozen=True)
class ImageInfo:
    categories: list[str] = field(default_factory=list)
    gui_apps: list[tuple[str, str]] = field(default_factory=list)  # (gui name, command)
    licenses: list[str] = field(default_factory=list)
    readme: str = ""
    description: str = ""


def read_inside(rootfs: Path, name: str) -> str:
    """A file at ``/name`` of the image, resolved inside it (symlinks cannot escape)."""
    try:
        path = RootFS(rootfs).resolve_dir([], create=False) / name
        if path.is_symlink() or not path.is_file():
            return ""
        return path.read_text(errors="replace")[:README_LIMIT]
    except OSError:
        return ""


def _licenses(recipe: dict[str, Any]) -> list[str]:
    out = []
    for entry in recipe.get("copyright") or []:
        if isinstance(entry, dict):
            value = entry.get("license") or entry.get("name")
            if value:
                out.append(str(value))
    return out


def first_sentence(readme: str) -> str:
    """The first line of prose in a README (headings, links and blank lines skipped)."""
    for line in readme.splitlines():
        text = line.strip()
        if text and not text.startswith(("#", "[", "!", "```", "|", "-", "{{")):
            return text
    heading = next((ln for ln in readme.splitlines() if ln.strip()), "")
    return heading.strip("# ").strip()


def read_recipe(rootfs: Path) -> dict[str, Any]:
    """The image's ``/build.yaml`` as a mapping; empty when missing, a link or not YAML."""
    try:
        recipe = yaml.safe_load(read_inside(rootfs, "build.yaml") or "{}")
    except yaml.YAMLError:
        return {}
    return recipe if isinstance(recipe, dict) else {}


def describe(recipe: dict[str, Any], labels: dict[str, str], readme: str) -> str:
    """The one description of an image: its label, else the recipe's, else the README's."""
    if labels.get("org.opencontainers.image.description"):
        return labels["org.opencontainers.image.description"]
    structured = recipe.get("structured_readme")
    if isinstance(structured, dict) and isinstance(structured.get("description"), str):
        text = " ".join(str(structured["description"]).split())
        if text:
            return text
    return first_sentence(readme)


def read_image_info(rootfs: Path, labels: dict[str, str] | None = None) -> ImageInfo:
    recipe = read_recipe(rootfs)
    readme = read_inside(rootfs, "README.md")
    labels = labels or {}
    return ImageInfo(
        categories=[str(c) for c in recipe.get("categories") or []],
        gui_apps=[
            (str(g["name"]), str(g["exec"]))
            for g in recipe.get("gui_apps") or []
            if isinstance(g, dict) and "name" in g and "exec" in g
        ],
        licenses=_licenses(recipe) or [v for k, v in labels.items() if k.endswith(".licenses")],
        readme=readme,
        description=describe(recipe, labels, readme),
    )
