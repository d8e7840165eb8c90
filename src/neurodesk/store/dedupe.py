"""Storing each distinct file once: identical files of all images share one inode.

A file's key is the sha256 of its content plus its mode, owner and modification time, so files
that share an inode are identical in every respect a program can observe (except the link
count). ``files/`` holds one name per key; an image's copy is replaced by a hard link to it,
after checking that the pool's copy still has the content its name says. A
pool entry whose link count has fallen to 1 is used by no image any more and ``gc`` removes it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# ext4 allows 65000 links per inode; stay below it and start a second copy when full.
MAX_LINKS = 60000


@dataclass
class DedupeResult:
    files: int = 0
    linked: int = 0
    bytes_shared: int = 0
    hashes: dict[str, str] = field(default_factory=dict)  # relative path → sha256 hex


def file_key(path: str, st: os.stat_result, sha256: str | None = None) -> str:
    """The pool key of the file at ``path``; ``sha256`` (hex) when its content hash is known."""
    if sha256 is None:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        sha256 = digest.hexdigest()
    mode = stat.S_IMODE(st.st_mode)
    return f"{sha256}-{mode:o}-{st.st_uid}-{st.st_gid}-{st.st_mtime_ns}"


def pool_path(pool: Path, key: str) -> Path:
    return pool / key[:2] / key


def dedupe_tree(root: Path, pool: Path, known: Mapping[str, str] | None = None) -> DedupeResult:
    """Replace every regular file under ``root`` by a link to its pool twin (adding new ones).

    ``root`` must not be visible to readers yet (it lives under the store's tmp/): each file is
    swapped by link + rename, but a crash part-way leaves a tree that gc throws away anyway.
    ``known`` maps paths relative to ``root`` to the sha256 (hex) of their content, computed as
    they were written (:attr:`neurodesk.image.layers.LayerApplier.hashes`): those files are
    not read again. A pool copy met is still checked against its name before it is linked.
    """
    result = DedupeResult()
    known = known or {}
    base = str(root)
    prefix = len(base) + 1
    made: set[str] = set()
    for dirpath, _dirnames, filenames in os.walk(base):
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
                continue
            result.files += 1
            rel = path[prefix:]
            key = file_key(path, st, known.get(rel))
            result.hashes[rel] = key.split("-", 1)[0]
            if share_file(path, st, key, pool, made) != st.st_ino:
                result.linked += 1
                result.bytes_shared += st.st_size
    return result


def share_file(
    path: str, st: os.stat_result, key: str, pool: Path, made: set[str] | None = None
) -> int:
    """Link the regular file ``path`` (its ``lstat`` ``st``, its :func:`file_key` ``key``) with
    its pool twin, or make it the pool's copy when it is the first of its kind; returns the inode
    ``path`` ends up as (``st.st_ino`` when it was not replaced by a link). ``made``: the pool's
    subdirectories already created in this pass (saves a ``mkdir`` per file)."""
    return pool_link(path, st, key, pool, made)[0]


def pool_link(
    path: str, st: os.stat_result, key: str, pool: Path, made: set[str] | None = None
) -> tuple[int, bool]:
    """:func:`share_file`, also saying whether the pool holds the inode returned (False when
    the file stayed unshared: a full inode, a directory we may not write)."""
    shared = pool_path(pool, key)
    if made is not None and key[:2] not in made:
        shared.parent.mkdir(parents=True, exist_ok=True)
        made.add(key[:2])
    try:
        os.link(path, shared)  # the first of its kind (the common case): one call
        return st.st_ino, True
    except FileNotFoundError:
        if shared.parent.is_dir():
            raise  # ``path`` itself is gone
        shared.parent.mkdir(parents=True, exist_ok=True)
        return pool_link(path, st, key, pool, made)
    except FileExistsError:
        pass
    existing = os.lstat(shared)
    if existing.st_ino == st.st_ino:
        return st.st_ino, True
    if existing.st_nlink >= MAX_LINKS:
        return st.st_ino, False
    if file_key(str(shared), existing) != key:
        # The pool's copy was damaged after it was stored: never link to it. This file (just
        # verified against its layer) takes its place in the pool.
        fixed = f"{shared}.nd-fix"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(fixed)
        os.link(path, fixed)
        os.replace(fixed, shared)
        return st.st_ino, True
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".nd-link-{name}")
    try:
        os.link(shared, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        # A directory we may not write to (non-root, read-only image dir) or a full inode: the
        # file simply stays unshared.
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EMLINK):
            raise
        return st.st_ino, False
    return existing.st_ino, True
