"""The bubblewrap backend: a RunSpec becomes a ``bwrap`` command line (no root needed).

The new root is a tmpfs onto which each top-level entry of the image is bound read-only. This
leaves the image untouched while letting bwrap create mount points for any host directory
(the current directory, $HOME, bind paths) even where the image has none.

A mount point cannot be made inside a read-only bind, so a bind to a path the image lacks under
a non-empty image directory (``/opt/x`` when the image has ``/opt/fsl``) "splays" that
directory: it becomes a directory of the tmpfs root, with each of its entries bound one by one,
and the new mount point sits beside them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

from neurodesk.runtime.base import Launch, Runtime
from neurodesk.runtime.forward import forwarded
from neurodesk.runtime.spec import RunSpec
from neurodesk.systools import require

# Provided fresh by the runtime, never taken from the image.
RUNTIME_DIRS = {"dev", "proc", "tmp", "sys"}


def splay_points(rootfs: Path, targets: Iterable[str]) -> set[str]:
    """Image directories that must be splayed so that every path in ``targets`` can be mounted."""
    points: set[str] = set()
    for target in targets:
        parts = PurePosixPath(target).parts[1:]
        if not parts or parts[0] in RUNTIME_DIRS:
            continue
        for depth in range(1, len(parts) + 1):
            host = rootfs.joinpath(*parts[:depth])
            if host.is_symlink():
                break  # resolved by the kernel inside the container; not ours to reshape
            if not host.exists():
                points.update("/" + "/".join(parts[:i]) for i in range(1, depth))
                break
            if not host.is_dir():
                break  # an existing file: mounting over it needs no new mount point
    return points


def _lay_out(host: str, prefix: str, dest: str, splay: set[str]) -> list[str]:
    args: list[str] = []
    for entry in sorted(os.scandir(host), key=lambda e: e.name):
        if not dest and entry.name in RUNTIME_DIRS:
            continue
        target = f"{dest}/{entry.name}"
        source = f"{prefix}/{entry.name}"
        if entry.is_symlink():
            args += ["--symlink", os.readlink(entry.path), target]
        elif entry.is_dir(follow_symlinks=False) and target in splay:
            args += ["--dir", target, *_lay_out(entry.path, source, target, splay)]
        elif entry.is_dir(follow_symlinks=False) and not any(os.scandir(entry.path)):
            # An empty directory (/home, /srv, /mnt, ...) is made in the tmpfs root instead, so
            # host paths below it ($HOME=/home/alice) get mount points.
            args += ["--dir", target]
        else:
            args += ["--ro-bind", source, target]
    return args


def image_args(rootfs: Path, root_expr: str | None = None, splay: Iterable[str] = ()) -> list[str]:
    """Arguments that lay the image's top level out read-only under the new root.

    ``root_expr`` replaces the rootfs path in the output (wrappers pass a shell expression that
    finds the image relative to their own location). ``splay`` names image directories to lay
    out entry by entry (see :func:`splay_points`).
    """
    prefix = root_expr if root_expr is not None else str(rootfs)
    args = _lay_out(str(rootfs), prefix, "", set(splay))
    return [*args, "--dev", "/dev", "--proc", "/proc"]


def data_fds(spec: RunSpec) -> dict[str, int]:
    """One inheritable in-memory file per made-up file of ``spec``, for ``--ro-bind-data``."""
    fds: dict[str, int] = {}
    for path, content in spec.files.items():
        fd = os.memfd_create(f"neurodesk{path.replace('/', '-')}", 0)
        os.write(fd, content.encode())
        os.lseek(fd, 0, os.SEEK_SET)
        os.set_inheritable(fd, True)
        fds[path] = fd
    return fds


PRIVILEGES_DROPPED = ["--unshare-user", "--uid", "0", "--gid", "0", "--cap-drop", "ALL"]


def bwrap_argv(
    spec: RunSpec, fds: Mapping[str, int] | None = None, program: str | None = None
) -> list[str]:
    """The bwrap command for ``spec``; ``fds`` (from :func:`data_fds`) supplies made-up files."""
    fds = fds or {}
    binds = spec.present_binds()
    targets = [b.dst for b in binds] + list(fds) + list(spec.devices) + [spec.cwd]
    args = [program or require("bwrap", "run containers"), "--die-with-parent"]
    if spec.drop_privileges:
        # root outside: root of a user namespace inside, without a single capability, so the
        # image, the store and the host stay out of reach (no remount, no raw devices).
        args += PRIVILEGES_DROPPED
    args += image_args(spec.rootfs, splay=splay_points(spec.rootfs, targets))
    for bind in binds:
        args += ["--ro-bind" if bind.readonly else "--bind", bind.src, bind.dst]
    for device in spec.devices:
        args += ["--dev-bind", device, device]
    for path, fd in sorted(fds.items()):
        args += ["--ro-bind-data", str(fd), path]
    args += ["--chdir", spec.cwd, "--clearenv"]
    for key, value in sorted(spec.env.items()):
        args += ["--setenv", key, value]
    args += spec.runtime_opts
    # bwrap 0.8 (Debian 12) has no "--" separator: the first non-option word is the command
    return [*args, *spec.argv]


class Bwrap(Runtime):
    name = "bwrap"
    forwards_signals = False

    def argv(self, spec: RunSpec, fds: dict[str, int] | None = None) -> list[str]:
        return bwrap_argv(spec, fds, self.program)

    def launch(self, spec: RunSpec, interactive: bool = False) -> Launch:
        fds = data_fds(spec)
        argv = self.argv(spec, fds)
        # An interactive shell needs the terminal as its controlling tty: no forwarder then.
        return Launch(self.name, self.version(), argv if interactive else forwarded(argv), fds)
