"""What an install says about an image: name, version, description, categories, URL, GUI apps.

Everything comes from the image itself (its ``/build.yaml``, ``/README.md`` and labels), so an
image fetched from anywhere installs with the same help text and menus as one built here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from neurodesk.catalog.imageinfo import describe, read_inside, read_recipe
from neurodesk.install.validate import check_command, check_text
from neurodesk.runtime.spec import DEPLOY_ENV_PREFIX
from neurodesk.store import ImageRecord

# DEPLOY_ENV_* values describe the container; these names would break host programs if a module
# set them on the host (the wrapper applies them inside the container in any case).
HOST_UNSAFE_ENV = frozenset(
    ("PATH", "LD_LIBRARY_PATH", "LD_PRELOAD", "PYTHONPATH", "PYTHONHOME", "HOME", "TMPDIR", "SHELL")
)


@dataclass(frozen=True)
class GuiApp:
    name: str
    exec: str

    @property
    def command(self) -> str:
        """The program the GUI entry starts (the first word of ``exec``)."""
        return self.exec.split()[0]


@dataclass(frozen=True)
class AppInfo:
    image_id: str
    name: str
    version: str
    description: str
    categories: list[str]
    url: str
    readme: str
    gui_apps: list[GuiApp] = field(default_factory=list)
    # DEPLOY_ENV_<VAR>=value of the image, as (VAR, value), for modules and activate scripts.
    deploy_env: list[tuple[str, str]] = field(default_factory=list)


def _url(recipe: dict[str, Any], labels: dict[str, str]) -> str:
    for key in ("org.opencontainers.image.url", "org.opencontainers.image.source"):
        if labels.get(key):
            return labels[key]
    if isinstance(recipe.get("readme_url"), str):
        return str(recipe["readme_url"])
    structured = recipe.get("structured_readme")
    if isinstance(structured, dict):
        documentation = str(structured.get("documentation") or "").strip()
        if documentation.startswith(("http://", "https://")) and not any(
            c.isspace() for c in documentation
        ):
            return documentation
    for entry in recipe.get("copyright") or []:
        if isinstance(entry, dict) and isinstance(entry.get("url"), str):
            return str(entry["url"])
    return ""


def app_info(record: ImageRecord) -> AppInfo:
    # Read inside the image's root only: a /README.md linking to a host file reads as empty.
    recipe = read_recipe(record.rootfs)
    readme = read_inside(record.rootfs, "README.md")
    gui = [
        GuiApp(str(g["name"]), str(g["exec"]))
        for g in recipe.get("gui_apps") or []
        if isinstance(g, dict) and g.get("name") and str(g.get("exec") or "").strip()
    ]
    deploy_env = sorted(
        (key.removeprefix(DEPLOY_ENV_PREFIX), value)
        for key, value in record.env.items()
        if key.startswith(DEPLOY_ENV_PREFIX)
        and key.removeprefix(DEPLOY_ENV_PREFIX) not in HOST_UNSAFE_ENV
    )
    categories = [str(c) for c in recipe.get("categories") or [] if isinstance(c, str)]
    for app in gui:
        check_command(app.name, "GUI app name")
        check_command(app.command, "GUI app command")
        check_text(app.exec, "GUI app command line")
    for category in categories:
        check_text(category, "category")
    return AppInfo(
        image_id=record.id,
        name=record.name,
        version=record.version,
        description=describe(recipe, record.labels, readme) or f"{record.name} {record.version}",
        categories=categories,
        url=_url(recipe, record.labels),
        readme=readme or f"{record.name} {record.version} (container {record.id})\n",
        gui_apps=gui,
        deploy_env=deploy_env,
    )
