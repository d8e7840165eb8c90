"""Installing an image's commands under a prefix, and removing exactly what was installed.

See ``layout.py`` for the tree. Each container's ``install.json`` lists every file its install
wrote (relative to the prefix); files shared by several containers (the menu, its folders, the
``store`` link) are listed in ``.neurodesk-shared.json`` and recomputed from the manifests after
every change. Every file is written through a temporary file and a rename; a file that neurodesk
did not write is never overwritten or removed.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from filelock import FileLock

from neurodesk.errors import NeurodeskError, NotFoundError
from neurodesk.install.commands import discover_commands
from neurodesk.install.files import Files, container_files
from neurodesk.install.layout import Layout
from neurodesk.install.menus import shared_menu_files
from neurodesk.install.metadata import app_info
from neurodesk.install.validate import check_commands, check_image
from neurodesk.runtime.launcher import PREFIX_PATH as LAUNCHER_PATH
from neurodesk.runtime.launcher import install_launcher
from neurodesk.store import ImageRecord
from neurodesk.store.atomic import write_text

DIR_MODE = 0o755  # installs are meant to be shared: readable and searchable by every account
LOCK_NAME = ".neurodesk.lock"


class InstallConflictError(NeurodeskError):
    """The install would overwrite a file neurodesk did not write, or use another store."""


@dataclass(frozen=True)
class Installed:
    image_id: str
    directory: Path
    commands: list[str]
    name: str = ""
    version: str = ""
    builddate: str = ""
    files: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def bin_dir(self) -> Path:
        return self.directory / "bin"


def container_dir(prefix: Path, image_id: str) -> Path:
    return prefix / Layout.container(image_id)


# -- small file-system helpers --------------------------------------------------------------------
def _mkdirs(directory: Path) -> None:
    """Create ``directory`` and missing parents, each world-readable whatever the umask."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
        path.chmod(DIR_MODE)


def _prune(prefix: Path, paths: Iterable[PurePosixPath]) -> None:
    """Remove directories left empty below ``prefix`` (never the prefix itself)."""
    parents = {p for path in paths for p in (prefix / path).parents if p != prefix}
    for directory in sorted(parents, key=lambda p: len(p.parts), reverse=True):
        if directory.is_relative_to(prefix) and directory.is_dir():
            with contextlib.suppress(OSError):  # not empty: something else lives there
                directory.rmdir()


def _remove(prefix: Path, paths: Iterable[str | PurePosixPath]) -> None:
    removed = [PurePosixPath(p) for p in paths]
    for path in removed:
        (prefix / path).unlink(missing_ok=True)
    _prune(prefix, removed)


def _write(prefix: Path, files: Files) -> None:
    for path, item in sorted(files.items()):
        target = prefix / path
        _mkdirs(target.parent)
        write_text(target, item.text, mode=item.mode)


def _check_free(prefix: Path, paths: Iterable[PurePosixPath], owned: set[str]) -> None:
    for path in paths:
        if str(path) not in owned and ((prefix / path).exists() or (prefix / path).is_symlink()):
            raise InstallConflictError(
                f"{prefix / path} exists and was not written by neurodesk",
                hint="move it away or install into another --prefix",
            )


# -- manifests ------------------------------------------------------------------------------------
def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def installed(prefix: Path) -> list[Installed]:
    found = []
    for manifest in sorted((prefix / "containers").glob("*/install.json")):
        data = _read_json(manifest)
        image = data.get("image") or {}
        found.append(
            Installed(
                manifest.parent.name,
                manifest.parent,
                list(data.get("commands") or []),
                name=str(image.get("name", "")),
                version=str(image.get("version", "")),
                builddate=str(image.get("builddate", "")),
                files=tuple(data.get("files") or []),
                categories=tuple(data.get("categories") or []),
            )
        )
    return found


def _owned_files(prefix: Path) -> set[str]:
    owned = {
        f for i in installed(prefix) for f in (*i.files, str(Layout.manifest_path(i.image_id)))
    }
    owned.update(_read_json(Layout(prefix).shared_state).get("files") or [])
    return owned


# -- the store link -------------------------------------------------------------------------------
def _link_store(layout: Layout, store_root: Path) -> None:
    """Make ``PREFIX/store`` lead to ``store_root``."""
    link = layout.store_link
    store = store_root.resolve()
    if link.exists() and link.resolve() == store:
        return
    if link.exists():
        if not link.is_symlink():
            raise InstallConflictError(
                f"{link} exists and is not the store {store}", hint="install into another --prefix"
            )
        if installed(layout.prefix):
            raise InstallConflictError(
                f"{layout.prefix} already holds images of the store {link.resolve()}",
                hint="install into another --prefix, or use that store (NEURODESK_HOME)",
            )
    # Otherwise: no link yet, a dangling one (the tree moved without its store), or a link to
    # another store with nothing installed from it: (re)point it, recorded as ours first so
    # that an interrupted install cannot leave a link that the last uninstall would keep.
    state = _read_json(layout.shared_state)
    if not state.get("store_link"):
        _write_state(layout, state.get("files") or [], store_link=True)
    # A link relative to the prefix survives moving the prefix and the store together.
    tmp = link.with_name(f".{link.name}.new")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(os.path.relpath(store, layout.prefix.resolve()))
    tmp.replace(link)


# -- install / uninstall --------------------------------------------------------------------------
def _commands(record: ImageRecord, gui_commands: Iterable[str]) -> list[str]:
    commands = discover_commands(record)
    # A GUI entry starts its program through a wrapper, even when it is not a deployed command.
    extra = [c for c in gui_commands if c not in commands and "/" not in c]
    return sorted({*commands, *extra})


def _write_state(layout: Layout, files: Iterable[str], store_link: bool) -> None:
    data = {"files": sorted(set(files)), "store_link": store_link}
    write_text(layout.shared_state, json.dumps(data, indent=2) + "\n")


def _refresh_shared(layout: Layout) -> None:
    """Recompute the files shared by all containers of the prefix from their manifests.

    Every list is written before the files it names, so a kill at any point leaves nothing on
    disk that no list claims (install would otherwise refuse to overwrite it).
    """
    state = _read_json(layout.shared_state)
    old = set(state.get("files") or [])
    link_ours = bool(state.get("store_link"))
    containers = installed(layout.prefix)
    files = shared_menu_files(c for i in containers for c in i.categories)
    new = {str(p) for p in files}
    if containers:
        _write_state(layout, old | new, link_ours)
    _write(layout.prefix, files)
    _remove(layout.prefix, sorted(old - new))
    if containers:
        _write_state(layout, new, link_ours)
        return
    if link_ours and layout.store_link.is_symlink():
        layout.store_link.unlink()
    _remove(layout.prefix, [PurePosixPath(LAUNCHER_PATH)])  # the wrappers' launcher
    layout.shared_state.unlink(missing_ok=True)


def _uninstall_locked(layout: Layout, target: Installed) -> None:
    _remove(layout.prefix, [*target.files, Layout.manifest_path(target.image_id)])


def install_image(record: ImageRecord, prefix: Path, gpu: bool = False) -> Installed:
    """Write wrappers, modules, activate scripts and menus for ``record`` under ``prefix``.

    Installing the same image again replaces its files; another build of the same name and
    version is uninstalled first, since they share module files. ``gpu`` makes the wrappers
    expose NVIDIA GPUs unless ``NEURODESK_GPU=0``.
    """
    layout = Layout(prefix.absolute())
    # Everything that reaches a generated file is checked before anything is written.
    check_image(record)
    app = app_info(record)
    commands = _commands(record, (g.command for g in app.gui_apps))
    check_commands(commands)
    _mkdirs(layout.prefix)
    files = container_files(record, app, commands, layout.prefix, gpu=gpu)
    manifest_path = layout.prefix / Layout.manifest_path(record.id)
    with FileLock(str(layout.prefix / LOCK_NAME), mode=0o644):
        before = {i.image_id: i for i in installed(layout.prefix)}
        replaced = [
            i
            for i in before.values()
            if i.name == record.name and i.version == record.version and i.image_id != record.id
        ]
        owned = _owned_files(layout.prefix)
        categories = [c for i in before.values() for c in i.categories]
        shared = shared_menu_files([*categories, *(app.categories or ["other"])])
        _check_free(layout.prefix, [*files, *shared, Layout.manifest_path(record.id)], owned)
        _link_store(layout, record.store_root)
        install_launcher(layout.prefix)  # the wrappers' signal forwarder (shared, not listed)
        for old in replaced:
            _uninstall_locked(layout, old)
        previous = before.get(record.id)
        kept = set(previous.files) if previous else set()
        new = {str(p) for p in files}
        manifest = {
            "image": record.to_json(),
            "commands": commands,
            "categories": app.categories or ["other"],
            # First everything that may be on disk until the files are written: a kill in
            # between leaves an install that installing or uninstalling again completes.
            "files": sorted(kept | new),
        }
        old_manifest = manifest_path.read_text() if previous else None
        _mkdirs(manifest_path.parent)
        write_text(manifest_path, json.dumps(manifest, indent=2) + "\n")
        try:
            _write(layout.prefix, files)
        except BaseException:
            _remove(layout.prefix, sorted(new - kept))
            if old_manifest is None:
                _remove(layout.prefix, [Layout.manifest_path(record.id)])
            else:
                write_text(manifest_path, old_manifest)
            raise
        _remove(layout.prefix, sorted(kept - new))
        manifest["files"] = sorted(new)
        write_text(manifest_path, json.dumps(manifest, indent=2) + "\n")
        _refresh_shared(layout)
    return Installed(
        record.id,
        layout.prefix / Layout.container(record.id),
        commands,
        name=record.name,
        version=record.version,
        builddate=record.builddate,
        files=tuple(manifest["files"]),
        categories=tuple(app.categories or ["other"]),
    )


def find_installed(prefix: Path, spec: str) -> Installed:
    """``NAME``, ``NAME/VERSION``, ``NAME/VERSION/BUILDDATE`` or a container id → one install."""
    found = installed(prefix)
    name, _, rest = spec.partition("/")
    version, _, builddate = rest.partition("/")
    matches = [
        i
        for i in found
        if i.image_id == spec
        or (
            i.name == name
            and (not version or i.version == version)
            and (not builddate or i.builddate == builddate)
        )
    ]
    here = ", ".join(f"{i.name}/{i.version}" for i in found) or "none"
    if not matches:
        raise NotFoundError(
            f"'{spec}' is not installed under {prefix}", hint=f"installed there: {here}"
        )
    if len(matches) > 1:
        raise NotFoundError(
            f"'{spec}' matches {len(matches)} installs under {prefix}",
            hint="name the version: " + ", ".join(f"{i.name}/{i.version}" for i in matches),
        )
    return matches[0]


def uninstall_image(prefix: Path, image_id: str) -> Installed:
    """Remove what the install of ``image_id`` (or NAME[/VERSION]) wrote, and nothing else."""
    layout = Layout(prefix.absolute())
    if not layout.prefix.is_dir():
        raise NotFoundError(f"no install tree at {layout.prefix}", hint="check --prefix")
    with FileLock(str(layout.prefix / LOCK_NAME), mode=0o644):
        target = find_installed(layout.prefix, image_id)
        _uninstall_locked(layout, target)
        _refresh_shared(layout)
        last = not installed(layout.prefix)
    if last:
        (layout.prefix / LOCK_NAME).unlink(missing_ok=True)
    return target
