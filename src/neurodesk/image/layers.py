"""Apply OCI layer tarballs to a root filesystem without ever writing outside it.

Every path in a layer is resolved *inside* the root: symlinks met on the way are followed as
the container would see them (absolute targets restart at the root, ``..`` stops at the root),
so a crafted layer cannot reach the host through ``../``, an absolute name, a symlink planted in
an earlier entry, or a hard link to an outside file. Device nodes are skipped and
setuid/setgid bits stripped. Whiteouts (``.wh.NAME``) and opaque markers (``.wh..wh..opq``)
follow the OCI image spec.

Layers are read through ISA-L's gzip decoder in a thread of its own (``isal``, 2-4x zlib, and it
overlaps with writing the files) or ``zstandard`` for zstd layers. Each regular file is hashed
(sha256) as it is written: :attr:`LayerApplier.hashes` hands those to the store's deduplication,
which then need not read the tree again.

Every entry is counted against the image's decompression limits (:mod:`neurodesk.image.limits`)
before it is written, so a bomb is refused with one line before the disk fills; sparse entries
are written sparse (their holes are not written). A name longer than the file system allows, a
damaged archive or a full disk is one error naming the layer and the entry.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import os
import posixpath
import shutil
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, cast

import zstandard
from isal import igzip_threaded, isal_zlib

from neurodesk.errors import NeurodeskError
from neurodesk.image.limits import Budget, UnpackLimits

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
MAX_SYMLINK_HOPS = 40
NAME_MAX = 255  # bytes in one path component (Linux file systems)
PATH_MAX = 4095  # bytes in a whole path or symlink target
CHUNK = 1 << 20


class UnsafeLayerError(NeurodeskError):
    """A layer tries to write outside the image root or is otherwise malicious."""


def _split(name: str) -> list[str]:
    return [p for p in name.split("/") if p not in ("", ".")]


class RootFS:
    """A directory being populated as a container root; all paths are resolved within it.

    Directories resolved for writing are remembered until anything is removed or replaced
    (:meth:`forget`): only a removal can turn a resolved directory into something else, since
    every name is created only where nothing was."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.is_root_user = os.geteuid() == 0
        self._dirs: dict[tuple[str, ...], Path] = {}
        self._prefix = os.path.join(str(root), "")

    def relative(self, path: Path) -> str:
        """``path`` (made by this object, so below the root) relative to the root."""
        text = str(path)
        if text.startswith(self._prefix):
            return text[len(self._prefix) :]
        return os.path.relpath(text, self.root)

    def forget(self) -> None:
        """Drop the remembered directories (something under the root was removed)."""
        self._dirs.clear()

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
                self.forget()
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
        key = tuple(parts[:-1])
        parent = self._dirs.get(key)
        if parent is None:
            parent = self._dirs[key] = self.resolve_dir(parts[:-1])
        return parent / parts[-1]


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _open_layer(raw: IO[bytes]) -> tuple[IO[bytes], bool]:
    """The layer's tar stream from the seekable ``raw`` (left at its start): gzip decoded by
    ISA-L in a thread, zstd, or ``raw`` itself; True when it is ``raw`` (uncompressed, so
    members can be read at their offsets)."""
    magic = raw.read(4)
    raw.seek(0)
    if magic[:2] == b"\x1f\x8b":
        stream: IO[bytes] = igzip_threaded.open(raw, "rb", threads=1)  # type: ignore[no-untyped-call]
        return stream, False
    if magic == b"\x28\xb5\x2f\xfd":
        return zstandard.ZstdDecompressor().stream_reader(raw, closefd=False), False
    return raw, True


def _read_at(raw: IO[bytes], view: memoryview, offset: int) -> int:
    """Up to ``len(view)`` bytes of ``raw`` at ``offset``: ``raw.read_at`` where it has one
    (a blob still arriving blocks there), else ``preadv`` on its descriptor."""
    read_at = getattr(raw, "read_at", None)
    if read_at is not None:
        return int(read_at(view, offset))
    return os.preadv(raw.fileno(), [view], offset)


# What a damaged layer raises: tar, and each decoder.
DAMAGED: tuple[type[Exception], ...] = (
    tarfile.TarError,
    EOFError,
    zlib.error,
    gzip.BadGzipFile,
    cast("type[Exception]", isal_zlib.error),  # a class; its stub calls it an instance
    zstandard.ZstdError,
)


def _members(archive: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    while (member := archive.next()) is not None:
        yield member


def _check_name(name: str, what: str) -> None:
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) > PATH_MAX:
        raise UnsafeLayerError(f"{what} '{name[:80]}...' is longer than {PATH_MAX} bytes")
    for part in encoded.split(b"/"):
        if len(part) > NAME_MAX:
            raise UnsafeLayerError(
                f"{what} '{name[:80]}...' has a component longer than {NAME_MAX} bytes"
            )


def _write_sparse(source: IO[bytes], fd: int, size: int, digest: hashlib._Hash) -> None:
    """Copy ``size`` bytes, seeking over all-zero chunks so holes stay holes."""
    zero = bytes(CHUNK)
    written = 0
    while written < size:
        chunk = source.read(min(CHUNK, size - written))
        if not chunk:
            break
        digest.update(chunk)
        if chunk == zero[: len(chunk)]:
            os.lseek(fd, len(chunk), os.SEEK_CUR)
        else:
            os.write(fd, chunk)
        written += len(chunk)
    os.ftruncate(fd, written)


def _write_all(source: IO[bytes], fd: int, digest: hashlib._Hash) -> None:
    """Copy ``source`` to ``fd``, hashing what is written."""
    while chunk := source.read(CHUNK):
        digest.update(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]


class LayerApplier:
    """Applies layers in order onto one root filesystem, within one decompression budget."""

    def __init__(self, root: Path, budget: Budget | None = None) -> None:
        self.fs = RootFS(root)
        self.dir_modes: dict[Path, tuple[int, int]] = {}
        self.budget = budget or Budget(UnpackLimits(max_size=1 << 62), 1 << 40, "the image")
        # Path relative to the root → sha256 hex of each regular file written: read by the
        # store's deduplication. Only trustworthy for paths that are regular files at the end.
        self.hashes: dict[str, str] = {}
        # ``share(path, stat, sha256 hex)``: called for each non-empty regular file once it is
        # complete (the store links it with its twin in the shared pool); returns the inode the
        # path ends up as while the pool holds it, else None. ``shared``: those inodes → sha256
        # hex (an inode the pool holds is never reused for another file meanwhile).
        self.share: Callable[[str, os.stat_result, str], int | None] | None = None
        self.shared: dict[int, str] = {}
        # While an uncompressed layer is applied: its raw stream and a read buffer (members'
        # bytes are read at their offsets, not through tarfile's file objects).
        self._at: tuple[IO[bytes], bytearray] | None = None

    def apply(self, layer: Path) -> None:
        """Apply the layer blob at ``layer``."""
        with open(layer, "rb", buffering=0) as raw:
            self.apply_stream(raw, layer.name)

    def apply_stream(self, raw: IO[bytes], label: str) -> None:
        """Apply the layer read from ``raw`` (seekable, at its start; the caller closes it);
        ``label`` names it in errors (its digest)."""
        created: set[str] = set()
        member: tarfile.TarInfo | None = None
        try:
            stream, plain = _open_layer(raw)
            owned = contextlib.nullcontext() if plain else stream
            with owned, tarfile.open(fileobj=stream, mode="r:" if plain else "r|") as archive:
                self._at = (raw, bytearray(CHUNK)) if plain else None
                for count, member in enumerate(_members(archive)):
                    self.budget.take(member.name, member.size if member.isfile() else 0)
                    self._apply_member(archive, member, created)
                    if plain and count % 1024 == 0:  # tarfile keeps them for lookups we never make
                        archive.members.clear()  # type: ignore[attr-defined]
        except DAMAGED as exc:
            raise UnsafeLayerError(
                f"layer {label[:19]} is not a readable tar archive: {exc}",
                hint="the image is damaged: fetch or build it again",
            ) from None
        except OSError as exc:
            where = f" at '{member.name[:200]}'" if member is not None else ""
            raise NeurodeskError(
                f"cannot unpack layer {label[:19]}{where}: {exc.strerror or exc}",
                hint="free disk space" if exc.errno == errno.ENOSPC else None,
            ) from None
        finally:
            self._at = None

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
        self, archive: tarfile.TarFile, member: tarfile.TarInfo, created: set[str]
    ) -> None:
        name = member.name
        _check_name(name, "entry")
        if member.issym() or member.islnk():
            _check_name(member.linkname, f"link target of '{name[:80]}'")
        base = posixpath.basename(name.rstrip("/"))
        if base == OPAQUE_MARKER:
            directory = self.fs.resolve_dir(_split(posixpath.dirname(name)))
            for child in directory.iterdir():
                if str(child) not in created:
                    self.fs.forget()
                    _remove(child)
            return
        if base.startswith(WHITEOUT_PREFIX):
            hidden = base[len(WHITEOUT_PREFIX) :]
            if hidden in ("", ".", ".."):
                raise UnsafeLayerError(f"whiteout '{name}' names no file (it would hide a parent)")
            target = self.fs.entry_path(posixpath.join(posixpath.dirname(name), hidden))
            if target.exists() or target.is_symlink():
                self.fs.forget()
                _remove(target)
            return
        if member.ischr() or member.isblk() or member.isfifo():
            return  # device nodes never come from an image; /dev is provided by the runtime
        dest = self.fs.entry_path(name)
        if dest == self.fs.root:
            return
        created.add(str(dest))
        mode = stat.S_IMODE(member.mode) & ~(stat.S_ISUID | stat.S_ISGID)
        if member.isfile():  # most entries: no lookup first (the create itself says EEXIST)
            self._write_file(archive, member, dest, mode)
            return
        try:
            existing: os.stat_result | None = os.lstat(dest)
        except FileNotFoundError:
            existing = None
        if member.isdir():
            if existing is not None and not stat.S_ISDIR(existing.st_mode):
                self.fs.forget()
                _remove(dest)
                existing = None
            if existing is None:
                dest.mkdir(mode=0o755)
            self.dir_modes[dest] = (mode | stat.S_IRWXU, int(member.mtime))
            self._chown(dest, member)
            return
        if existing is not None:
            self.fs.forget()
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
            known = self.hashes.get(self.fs.relative(source))
            if known is None:
                self.hashes.pop(self.fs.relative(dest), None)
            else:
                self.hashes[self.fs.relative(dest)] = known
            return
        else:
            return
        self._chown(dest, member)
        os.utime(dest, (member.mtime, member.mtime), follow_symlinks=False)

    def _write_file(
        self, archive: tarfile.TarFile, member: tarfile.TarInfo, dest: Path, mode: int
    ) -> None:
        """A regular file: created where nothing is (whatever was there is removed first, never
        followed), written through its own descriptor, hashed as it is written, then owner,
        mode and times set on that descriptor."""
        digest = hashlib.sha256()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(dest, flags, 0o600)
        except FileExistsError:
            self.fs.forget()
            _remove(dest)
            fd = os.open(dest, flags, 0o600)
        try:
            if self._at is not None and not member.issparse():
                self._copy_at(member, fd, digest)
            else:
                source_stream = archive.extractfile(member)
                assert source_stream is not None
                with source_stream:
                    if member.issparse():
                        _write_sparse(source_stream, fd, member.size, digest)
                    else:
                        _write_all(source_stream, fd, digest)
            if self.fs.is_root_user:
                os.fchown(fd, member.uid, member.gid)
            # after chown, which clears setuid bits on Linux (ours are already stripped)
            os.fchmod(fd, mode)
            os.utime(fd, (member.mtime, member.mtime))
            sha = digest.hexdigest()
            if self.share is not None and member.size:
                inode = self.share(str(dest), os.fstat(fd), sha)
                if inode is not None:
                    self.shared[inode] = sha
        finally:
            os.close(fd)
        self.hashes[self.fs.relative(dest)] = sha

    def _copy_at(self, member: tarfile.TarInfo, fd: int, digest: hashlib._Hash) -> None:
        """Copy a member of an uncompressed layer from its offset in the layer (no tarfile file
        object, one buffer for every file), hashing what is written."""
        assert self._at is not None
        raw, buffer = self._at
        view = memoryview(buffer)
        offset, left = member.offset_data, member.size
        while left:
            count = _read_at(raw, view[: min(left, CHUNK)], offset)
            if not count:
                raise tarfile.ReadError("unexpected end of data")
            chunk = view[:count]
            digest.update(chunk)
            while chunk:
                chunk = chunk[os.write(fd, chunk) :]
            offset += count
            left -= count

    def _chown(self, path: Path, member: tarfile.TarInfo) -> None:
        if self.fs.is_root_user:
            os.lchown(path, member.uid, member.gid)
            if not path.is_symlink() and not path.is_dir():
                # chown clears setuid bits on Linux; the mode we want is already stripped of them
                os.chmod(path, stat.S_IMODE(member.mode) & ~(stat.S_ISUID | stat.S_ISGID))


def unpack_layers(
    layers: list[Path], root: Path, limits: UnpackLimits | None = None, what: str = "the image"
) -> dict[str, str]:
    """Apply ``layers`` (bottom first) to the empty directory ``root``, refusing the image
    (:class:`~neurodesk.image.limits.UnpackLimitError`) when it passes ``limits``. Returns the
    sha256 of every regular file written (path relative to ``root`` → hex; see
    :attr:`LayerApplier.hashes`)."""
    compressed = sum(layer.stat().st_size for layer in layers)
    applier = LayerApplier(root, Budget(limits or UnpackLimits(), compressed, what))
    for layer in layers:
        applier.apply(layer)
    applier.finish()
    return applier.hashes
