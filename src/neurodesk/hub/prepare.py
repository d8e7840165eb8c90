"""``hub prepare``: every listed tool installed once into the shared, read-only site tree.

The site tree is at once a NEURODESK_HOME (its ``store``) and an install prefix (wrappers,
modules, menus), like a site-wide ``neurodesk install --prefix``; it uses the same fetch and
install code. Afterwards nothing in it is writable by anyone but root, and no user waits for a
download in class.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from neurodesk.hub.deploy import write_generated
from neurodesk.hub.jhconfig import SYSTEM_ACCOUNT_SPAWNERS, prepare_account
from neurodesk.hub.layout import HubDir
from neurodesk.hub.settings import load_settings, require_users
from neurodesk.install.installer import install_image
from neurodesk.paths import Paths
from neurodesk.sources.fetch import fetch_image
from neurodesk.sources.progress import NullProgress, TransferProgress


@dataclass(frozen=True)
class Prepared:
    tool: str
    image: str
    commands: list[str]


def read_only_for_others(root: Path) -> None:
    """Everything under ``root`` readable (and directories enterable) by all, writable by none
    but the owner; symbolic links are not followed."""
    for directory, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames, ""]:
            path = Path(directory, name) if name else Path(directory)
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                continue
            mode = stat.S_IMODE(info.st_mode) & ~0o022
            mode |= 0o044
            if stat.S_ISDIR(info.st_mode) or info.st_mode & 0o100:
                mode |= 0o011
            if mode != stat.S_IMODE(info.st_mode):
                path.chmod(mode)


def prepare_site(hub: HubDir, progress: TransferProgress | None = None) -> list[Prepared]:
    settings = load_settings(hub.root)
    require_users(settings, str(hub.settings))
    hub.site.mkdir(parents=True, exist_ok=True)
    paths = Paths(hub.site)
    done = []
    for tool in settings.tools:
        record = fetch_image(
            tool, paths, settings.source or None, False, progress or NullProgress()
        )
        installed = install_image(record, hub.site)
        done.append(Prepared(tool, record.id, list(installed.commands)))
    data = hub.data(settings)
    data.mkdir(parents=True, exist_ok=True)
    for tree in (hub.site, data):
        read_only_for_others(tree)
    if settings.spawner.kind in SYSTEM_ACCOUNT_SPAWNERS:
        for name in settings.users:
            prepare_account(hub, settings, name)
    write_generated(hub, settings)
    return done
