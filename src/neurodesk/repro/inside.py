"""Reading files of an image's root filesystem without ever leaving it.

Images are untrusted: ``/var/lib/dpkg/status`` or a ``METADATA`` file may be a symlink to
``/etc/shadow`` of the host, a directory may be a link to ``/``. Every path is resolved
component by component inside the root (absolute links restart at the image root, ``..`` stops
there), the final open refuses links, and only regular files are read, up to a size limit.
"""

from __future__ import annotations

import os
import posixpath
import stat
from pathlib import Path

from neurodesk.image.layers import RootFS, UnsafeLayerError

MAX_HOPS = 32
LIMIT = 64 << 20  # bytes read from one file at most


class ImageFiles:
    def __init__(self, rootfs: Path) -> None:
        self.rootfs = rootfs
        self._root = RootFS(rootfs)

    def _dir(self, path: str) -> Path | None:
        parts = [p for p in path.split("/") if p and p != "."]
        try:
            directory = self._root.resolve_dir(parts, create=False)
        except (OSError, UnsafeLayerError):
            return None
        # resolve_dir keeps every step inside; check once more before trusting it
        if not directory.is_relative_to(self.rootfs) or directory.is_symlink():
            return None
        return directory

    def resolve(self, path: str) -> Path | None:
        """The host path of the regular file ``path`` of the image, or None."""
        current = posixpath.normpath("/" + path)
        for _ in range(MAX_HOPS):
            parent, name = posixpath.split(current)
            directory = self._dir(parent)
            if directory is None or not name or name == "..":
                return None
            host = directory / name
            try:
                info = host.lstat()
            except OSError:
                return None
            if stat.S_ISLNK(info.st_mode):
                target = os.readlink(host)
                base = "/" if target.startswith("/") else parent
                current = posixpath.normpath(posixpath.join(base, target))
                if current.startswith("//"):
                    current = current[1:]
                continue
            return host if stat.S_ISREG(info.st_mode) else None
        return None

    def is_dir(self, path: str) -> bool:
        return self._dir(path) is not None

    def listdir(self, path: str) -> list[str]:
        directory = self._dir(path)
        if directory is None:
            return []
        try:
            return sorted(os.listdir(directory))
        except OSError:
            return []

    def read_bytes(self, path: str, limit: int = LIMIT) -> bytes | None:
        host = self.resolve(path)
        if host is None:
            return None
        try:
            fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return None
            return handle.read(limit)

    def read_text(self, path: str, limit: int = LIMIT) -> str | None:
        data = self.read_bytes(path, limit)
        return None if data is None else data.decode("utf-8", errors="replace")
