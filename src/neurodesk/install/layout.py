"""Every path inside an install prefix, computed in one place.

::

    PREFIX/store                                  the store holding the images (a relative symlink,
                                                  or the store itself when it lives in the prefix)
    PREFIX/containers/<id>/commands.txt           one command per line
    PREFIX/containers/<id>/bin/<command>          one wrapper per command
    PREFIX/containers/<id>/activate, deactivate   for shells without modules (source them)
    PREFIX/containers/<id>/terminal               what the menu entry of a command-line tool opens
    PREFIX/containers/<id>/install.json           the files written (uninstall removes those)
    PREFIX/modules/<name>/<version>.lua           Lmod
    PREFIX/modulefiles/<name>/<version>           environment-modules (Tcl)
    PREFIX/share/applications/*.desktop           XDG menu entries
    PREFIX/share/desktop-directories/*.directory  XDG menu folders (one per category)
    PREFIX/etc/xdg/menus/applications-merged/neurodesk.menu   the merged menu
    PREFIX/.neurodesk-shared.json                 files shared by several containers (menus, link)
    PREFIX/libexec/neurodesk-launch               the wrappers' signal forwarder (launcher.c)

Wrappers, modules and the menu find everything by relative paths from their own location, so
the depth of each file below the prefix is part of the format (see ``UP_TO_PREFIX``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

# From a wrapper's directory (containers/<id>/bin) back to the prefix.
UP_TO_PREFIX = "../../.."
STORE_LINK = "store"
SHARED_STATE = ".neurodesk-shared.json"
MENU_FILE = PurePosixPath("etc/xdg/menus/applications-merged/neurodesk.menu")
APPLICATIONS = PurePosixPath("share/applications")
DIRECTORIES = PurePosixPath("share/desktop-directories")
TOP_DIRECTORY = "neurodesk.directory"


def slug(text: str) -> str:
    """A file-name and XDG-category-safe spelling: ``data organisation`` → ``data-organisation``."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


@dataclass(frozen=True)
class Layout:
    prefix: Path

    @property
    def store_link(self) -> Path:
        return self.prefix / STORE_LINK

    @property
    def shared_state(self) -> Path:
        return self.prefix / SHARED_STATE

    @property
    def containers(self) -> Path:
        return self.prefix / "containers"

    @staticmethod
    def container(image_id: str) -> PurePosixPath:
        return PurePosixPath("containers", image_id)

    @staticmethod
    def bin_dir(image_id: str) -> PurePosixPath:
        return PurePosixPath("containers", image_id, "bin")

    @staticmethod
    def manifest_path(image_id: str) -> PurePosixPath:
        return PurePosixPath("containers", image_id, "install.json")

    @staticmethod
    def lua_module(name: str, version: str) -> PurePosixPath:
        return PurePosixPath("modules", name, f"{version}.lua")

    @staticmethod
    def tcl_module(name: str, version: str) -> PurePosixPath:
        return PurePosixPath("modulefiles", name, version)

    @staticmethod
    def desktop_entry(image_id: str, app: str | None = None) -> PurePosixPath:
        stem = f"neurodesk-{slug(image_id)}" + (f"-{slug(app)}" if app else "")
        return APPLICATIONS / f"{stem}.desktop"

    @staticmethod
    def category_directory(category: str) -> PurePosixPath:
        return DIRECTORIES / f"neurodesk-{slug(category)}.directory"
