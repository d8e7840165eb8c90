"""Lmod module files for a published tree: ``neurodesk-modules/<category>/<name>/<version>.lua``.

Rendered by install's one module renderer (the same template, the same filtered
``DEPLOY_ENV_*``): the module finds the tree from its own location, so a tree stays usable when
mounted or copied elsewhere, and puts the container's wrapper directory on PATH.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from neurodesk.catalog.imageinfo import ImageInfo
from neurodesk.install.files import render_module
from neurodesk.install.metadata import app_info
from neurodesk.store import ImageRecord


def render_lua(record: ImageRecord, info: ImageInfo, commands: list[str]) -> str:
    """The module of ``record`` at ``neurodesk-modules/<category>/<name>/<version>.lua``."""
    app = app_info(record)
    category = (info.categories or app.categories or ["other"])[0]
    path = PurePosixPath("neurodesk-modules", category, record.name, f"{record.version}.lua")
    return render_module("lua", app, commands, path, f"containers/{record.id}")
