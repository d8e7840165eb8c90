"""The XDG menu files shared by every container of a prefix: category folders and the menu.

They depend on the set of installed containers, so they are recomputed from the install
manifests after each install and uninstall (see ``installer.refresh_shared``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from neurodesk import __version__
from neurodesk.install.files import Files, InstallFile, xdg_category
from neurodesk.install.layout import (
    APPLICATIONS,
    DIRECTORIES,
    MENU_FILE,
    TOP_DIRECTORY,
    Layout,
)
from neurodesk.install.templating import render


def shared_menu_files(categories: Iterable[str]) -> Files:
    """Folders for ``categories`` (empty → no menu at all) and the merged menu listing them."""
    wanted = sorted(set(categories), key=str.lower)
    if not wanted:
        return {}
    files: Files = {
        DIRECTORIES / TOP_DIRECTORY: InstallFile(
            render("category.directory.j2", title="Neurodesk", icon="applications-science")
        )
    }
    folders = []
    for category in wanted:
        path = Layout.category_directory(category)
        files[path] = InstallFile(render("category.directory.j2", title=category, icon="folder"))
        folders.append(
            {"title": category, "directory": path.name, "category": xdg_category(category)}
        )
    menu_dir = str(MENU_FILE.parent)
    files[MENU_FILE] = InstallFile(
        render(
            "neurodesk.menu.j2",
            neurodesk_version=__version__,
            # Relative to the menu file, as the menu specification allows.
            app_dir=os.path.relpath(str(APPLICATIONS), menu_dir),
            directory_dir=os.path.relpath(str(DIRECTORIES), menu_dir),
            top_directory=TOP_DIRECTORY,
            folders=folders,
        )
    )
    return files
