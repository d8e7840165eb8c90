"""The files one container's install writes: wrappers, modules, activate scripts, menu entries.

Each function returns ``{path relative to the prefix: InstallFile}``; the installer writes them
and records the paths, so uninstall removes exactly these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from neurodesk import __version__
from neurodesk.install.layout import Layout, slug
from neurodesk.install.metadata import AppInfo
from neurodesk.install.templating import render
from neurodesk.install.wrapper import MORE_FILE, render_wrapper, render_wrapper_more
from neurodesk.store import ImageRecord

EXECUTABLE = 0o755
REGULAR = 0o644
# Menu entries need a registered main category to be shown by every desktop; ours are extra.
MAIN_CATEGORIES = ("Science", "MedicalSoftware")


@dataclass(frozen=True)
class InstallFile:
    text: str
    mode: int = REGULAR


Files = dict[PurePosixPath, InstallFile]


def xdg_category(category: str) -> str:
    return f"X-Neurodesk-{slug(category)}"


def shell_key(image_id: str) -> str:
    """A shell-variable-safe spelling of an image id (activate keeps its state in variables)."""
    return re.sub(r"[^A-Za-z0-9]", "_", image_id)


def wrapper_files(record: ImageRecord, commands: list[str], gpu: bool = False) -> Files:
    bin_dir = Layout.bin_dir(record.id)
    files = {
        bin_dir / c: InstallFile(
            render_wrapper(record, c, gpu=gpu, more_file=MORE_FILE), EXECUTABLE
        )
        for c in commands
    }
    # the rare cases' helpers, read by the wrappers only when a call needs them
    files[bin_dir / MORE_FILE] = InstallFile(render_wrapper_more(record))
    files[bin_dir.parent / "commands.txt"] = InstallFile("".join(f"{c}\n" for c in commands))
    return files


def render_module(
    kind: str, app: AppInfo, commands: list[str], module_path: PurePosixPath, bin_dir: str
) -> str:
    """The one module renderer (``kind`` lua or tcl), for installs and published trees alike.

    ``module_path`` is the module file relative to the tree's root and ``bin_dir`` the wrapper
    directory relative to it: the module finds the root from its own location.
    """
    return render(
        f"module.{kind}.j2",
        app=app,
        commands=commands,
        bin_dir=bin_dir,
        module_path=module_path,
        depth=len(module_path.parts),
        neurodesk_version=__version__,
    )


def module_files(app: AppInfo, commands: list[str], layout: Layout) -> Files:
    bin_dir = str(layout.bin_dir(app.image_id))
    lua = layout.lua_module(app.name, app.version)
    tcl = layout.tcl_module(app.name, app.version)
    return {
        lua: InstallFile(render_module("lua", app, commands, lua, bin_dir)),
        tcl: InstallFile(render_module("tcl", app, commands, tcl, bin_dir)),
    }


def shell_files(app: AppInfo, commands: list[str], layout: Layout) -> Files:
    directory = layout.container(app.image_id)
    context = {
        "app": app,
        "key": shell_key(app.image_id),
        "activate_rel": str(directory / "activate"),
        "activate_at_install": str(layout.prefix / directory / "activate"),
    }
    banner = [f"{app.name} {app.version} (container {app.image_id})"]
    banner.append("commands: " + " ".join(commands))
    if app.url:
        banner.append(f"documentation: {app.url}")
    return {
        directory / "activate": InstallFile(render("activate.sh.j2", **context)),
        directory / "deactivate": InstallFile(render("deactivate.sh.j2", **context)),
        directory / "terminal": InstallFile(
            render("terminal.sh.j2", app=app, banner=banner), EXECUTABLE
        ),
    }


def desktop_files(app: AppInfo, layout: Layout) -> Files:
    """One entry for the command-line tools (a terminal with them on PATH), one per GUI app.

    The desktop entry format has no relative ``Exec``: these hold absolute paths, rewritten by
    installing again after the tree moves.
    """
    categories = [*MAIN_CATEGORIES, *(xdg_category(c) for c in app.categories or ["other"])]
    directory = layout.prefix / layout.container(app.image_id)
    comment = app.description if app.description != app.name else f"{app.name} in a container"
    files = {
        layout.desktop_entry(app.image_id): InstallFile(
            render(
                "app.desktop.j2",
                app=app,
                entry_name=f"{app.name} {app.version}",
                comment=comment,
                exec_argv=[str(directory / "terminal")],
                terminal=True,
                icon="utilities-terminal",
                categories=categories,
            )
        )
    }
    for gui in app.gui_apps:
        words = gui.exec.split()
        files[layout.desktop_entry(app.image_id, gui.name)] = InstallFile(
            render(
                "app.desktop.j2",
                app=app,
                entry_name=f"{gui.name.removesuffix('GUI')} {app.version}",
                comment=comment,
                exec_argv=[str(directory / "bin" / words[0]), *words[1:]],
                terminal=False,
                icon="applications-science",
                categories=categories,
            )
        )
    return files


def container_files(
    record: ImageRecord, app: AppInfo, commands: list[str], prefix: Path, gpu: bool = False
) -> Files:
    layout = Layout(prefix)
    return {
        **wrapper_files(record, commands, gpu),
        **module_files(app, commands, layout),
        **shell_files(app, commands, layout),
        **desktop_files(app, layout),
    }
