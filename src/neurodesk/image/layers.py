"""Apply OCI layer tarballs to a root filesystem without ever writing outside it.

Every path in a layer is resolved *inside* the root: symlinks met on the way are followed as
the container would see them (absolute targets restart at the root, ``..`` stops at the root),
so a crafted layer cannot reach the host through ``../``, an absolute name, a symlink planted in
an earlier entry, or a hard link to an outside file. Device nodes are skipped and
setuid/setgid bits stripped. Whiteouts (``.wh.NAME``) and opaque markers (``.wh..wh..opq``)
follow the OCI image spec.
"""

from __future__ import annotations

import gzip
import os
import posixpath
import shutil
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from neurodesk.errors import NeurodeskError

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
MAX_SYMLINK_HOPS = 40


class UnsafeLayerError(NeurodeskError):
    """A layer tries to write outside the image root or is otherwise malicious."""


def _split(name: str) -> list[str]:
    return [p for p in name.split("/") if p not in ("", ".")]


class RootFS:
    """A directory being populated as a container root; all paths are resolved within it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.is_root_user = os.geteuid() == 0

    def resolve_dir(self, parts: list[str], create: bool = True) -> Path:
        """Host path of the directory ``/parts...`` inside the root, following symlinks in scope."""
        stack: list[str] = []
        pending = list(parts)
        hops = 0
        while pending:
            part = pending.pop(0)
            if part == "..":
                if stack:
                    stack.pop()
                continue
            host = self.root.joinpath(*stack, part)
            if host.is_symlink():
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise UnsafeLayerError(f"too many symlink levels under /{'/'.join(stack)}")
                target = os.readlink(host)
                if target.startswith("/"):
                    stack = []
                pending = _split(target) + pending
                continue
            if not host.exists():
                if not create:
                    raise FileNotFoundError(host)
                host.mkdir(mode=0o755)
            elif not host.is_dir():
                if not create:
                    raise NotADirectoryError(host)
                host.unlink()
                host.mkdir(mode=0o755)
            stack.append(part)
        return self.root.joinpath(*stack)

    def entry_path(self, name: str) -> Path:
        """Host path for a tar entry name: parent resolved in scope, last component literal."""
        parts = _split(name)
        if not parts:
            return self.root
        if ".." in parts:
            raise UnsafeLayerError(f"entry '{name}' contains '..' and could escape the image root")
        return self.resolve_dir(parts[:-1]) / parts[-1]


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _open_layer(path: Path) -> IO[bytes]:  # gzip.GzipFile is a binary IO
    with path.open("rb") as probe:
        magic = probe.read(4)
    if magic[:2] == b"\x1f\x8b":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if magic == b"\x28\xb5\x2f\xfd":
        raise NeurodeskError(
            f"layer {path.name} is zstd-compressed, which is not supported yet",
            hint="re-export the image with gzip layers (skopeo copy --dest-compress-format gzip)",
        )
    return path.open("rb")


def _members(archive: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    while (member := archive.next()) is not None:
        yield member


class LayerApplier:
    """Applies layers in order onto one root filesystem."""

    def __init__(self, root: Path) -> None:
        self.fs = RootFS(root)
        self.dir_modes: dict[Path, tuple[int, int]] = {}

    def apply(self, layer: Path) -> None:
        created: set[Path] = set()
        with _open_layer(layer) as stream, tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in _members(archive):
                self._apply_member(archive, member, created)

    def finish(self) -> None:
        """Directory modes and times last: a read-only directory would block later writes."""
        real_root = os.path.realpath(self.fs.root)
        for path, (mode, mtime) in sorted(self.dir_modes.items(), reverse=True):
            # A later layer may have replaced a parent by a symlink (to the host's /usr, say):
            # only a path with no symlink anywhere below the root is still the directory we made.
            candidate = os.path.join(real_root, os.path.relpath(path, self.fs.root))
            if os.path.realpath(candidate) != candidate or not os.path.isdir(candidate):
                continue  # removed or replaced by a later layer
            os.chmod(candidate, mode)
            os.utime(candidate, (mtime, mtime), follow_symlinks=False)

    def _apply_member(
        self, archive: tarfile.TarFile, member: tarfile.TarInfo, created: set[Path]
    ) -> None:
        name = member.name
        base = posixpath.basename(name.rstrip("/"))
        if base == OPAQUE_MARKER:
            directory = self.fs.resolve_dir(_split(posixpath.dirname(name)))
            for child in directory.iterdir():
                if child not in created:
                    _remove(child)
            return
        if base.startswith(WHITEOUT_PREFIX):
            hidden = base[len(WHITEOUT_PREFIX) :]
            if hidden in ("", ".", ".."):
                raise UnsafeLayerError(f"whiteout '{name}' names no file (it would hide a parent)")
            target = self.fs.entry_path(posixpath.join(posixpath.dirname(name), hidden))
            if target.exists() or target.is_symlink():
                _remove(target)
            return
        if member.ischr() or member.isblk() or member.isfifo():
            return  # device nodes never come from an image; /dev is provided by the runtime
        dest = self.fs.entry_path(name)
        if dest == self.fs.root:
            return
        created.add(dest)
        mode = stat.S_IMODE(member.mode) & ~(stat.S_ISUID | stat.S_ISGID)
        if member.isdir():
            if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
                _remove(dest)
            dest.mkdir(mode=0o755, exist_ok=True)
            self.dir_modes[dest] = (mode | stat.S_IRWXU, int(member.mtime))
            self._chown(dest, member)
            return
        if dest.exists() or dest.is_symlink():
            _remove(dest)
        if member.issym():
            os.symlink(member.linkname, dest)
        elif member.islnk():
            source = self.fs.entry_path(member.linkname)
            if source.is_symlink() or not source.is_file():
                raise UnsafeLayerError(
                    f"hard link '{name}' points to '{member.linkname}', which is not a regular "
                    "file inside the image"
                )
            os.link(source, dest)
            return
        elif member.isfile():
            source_stream = archive.extractfile(member)
            assert source_stream is not None
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            fd = os.open(dest, flags, 0o600)
            with os.fdopen(fd, "wb") as out, source_stream:
                shutil.copyfileobj(source_stream, out, 1 << 20)
            os.chmod(dest, mode)
        else:
            return
        self._chown(dest, member)
        os.utime(dest, (member.mtime, member.mtime), follow_symlinks=False)

    def _chown(self, path: Path, member: tarfile.TarInfo) -> None:
        if self.fs.is_root_user:
            os.lchown(path, member.uid, member.gid)
            if not path.is_symlink() and not path.is_dir():
                # chown clears setuid bits on Linux; the mode we want is already stripped of them
                os.chmod(path, stat.S_IMODE(member.mode) & ~(stat.S_ISUID | stat.S_ISGID))


def unpack_layers(layers: list[Path], root: Path) -> None:
    """Apply ``layers`` (bottom first) to the empty directory ``root``."""
    applier = LayerApplier(root)
    for layer in layers:
        applier.apply(layer)
    applier.finish()
