"""The bubblewrap backend: a RunSpec becomes a ``bwrap`` command line (no root needed).

The new root is a tmpfs onto which each top-level entry of the image is bound read-only. This
leaves the image untouched while letting bwrap create mount points for any host directory
(the current directory, $HOME, bind paths) even where the image has none.
"""

from __future__ import annotations

import os
from pathlib import Path

from neurodesk.runtime.spec import RunSpec
from neurodesk.systools import require

# Provided fresh by the runtime, never taken from the image.
RUNTIME_DIRS = {"dev", "proc", "tmp", "sys"}


def image_args(rootfs: Path, root_expr: str | None = None) -> list[str]:
    """Arguments that lay the image's top level out read-only under the new root.

    ``root_expr`` replaces the rootfs path in the output (wrappers pass a shell expression that
    finds the image relative to their own location).
    """
    prefix = root_expr if root_expr is not None else str(rootfs)
    args: list[str] = []
    for entry in sorted(os.scandir(rootfs), key=lambda e: e.name):
        if entry.name in RUNTIME_DIRS:
            continue
        if entry.is_symlink():
            args += ["--symlink", os.readlink(entry.path), f"/{entry.name}"]
        elif entry.is_dir(follow_symlinks=False) and not any(os.scandir(entry.path)):
            # An empty directory (/home, /srv, /mnt, ...) is made in the tmpfs root instead, so
            # host paths below it ($HOME=/home/alice) get mount points.
            args += ["--dir", f"/{entry.name}"]
        else:
            args += ["--ro-bind", f"{prefix}/{entry.name}", f"/{entry.name}"]
    return [*args, "--dev", "/dev", "--proc", "/proc"]


def bwrap_argv(spec: RunSpec) -> list[str]:
    args = [require("bwrap", "run containers"), "--die-with-parent"]
    args += image_args(spec.rootfs)
    for bind in spec.binds:
        if not os.path.exists(bind.src):
            continue
        args += ["--ro-bind" if bind.readonly else "--bind", bind.src, bind.dst]
    args += ["--chdir", spec.cwd, "--clearenv"]
    for key, value in sorted(spec.env.items()):
        args += ["--setenv", key, value]
    # bwrap 0.8 (Debian 12) has no "--" separator: the first non-option word is the command
    return [*args, *spec.argv]
