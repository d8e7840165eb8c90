"""Per-layer state: the root filesystem after each prefix of an image's layers, kept as a tree of
hard links, so an image that starts with layers the store already unpacked is made by linking
that state and applying only the layers that differ (a rebuild after one changed directive).

Layout under the store::

    layers/<chain>/rootfs/        the tree after the layers of that chain (files are pool inodes)
    layers/<chain>/state.json     {"hashes": {relative path: sha256 hex}} of its regular files
    images/<hex>/chains.json      the chain id after each of the image's layers
    images/<hex>/state.json       the same for the image's own tree (the state after all layers)

States are kept after large layers only (the store decides, see ``SMALL_LAYER`` there): a
small layer keeps its blob and is replayed on the state below it.

A chain id names a prefix of layers by their *blob* digests, which the store verified on entry
(``chain(L1) = L1``, ``chain(L1..Lk) = sha256(chain(L1..Lk-1) + " " + Lk)``, as OCI's ChainID
but over blob digests, never over a config's unverified ``diff_ids``), so a crafted image
cannot make the store reuse another image's state for layers it does not hold.

Snapshots are made under ``tmp/`` and renamed into place; ``gc`` drops the ones no image names.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from neurodesk.store.dedupe import file_key, share_file

STATE_NAME = "state.json"
CHAINS_NAME = "chains.json"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

# (mode, mtime) of a directory, applied once everything below it is written.
DirModes = dict[Path, tuple[int, int]]


def chain_ids(layer_digests: Iterable[str]) -> list[str]:
    """The chain id after each layer (bottom first)."""
    chains: list[str] = []
    for digest in layer_digests:
        if chains:
            digest = "sha256:" + hashlib.sha256(f"{chains[-1]} {digest}".encode()).hexdigest()
        chains.append(digest)
    return chains


@dataclass(frozen=True)
class Snapshot:
    """A stored state: ``count`` layers of the image applied, tree at ``rootfs``."""

    count: int
    rootfs: Path
    hashes: dict[str, str]  # relative path → sha256 hex of its regular files


def clone_tree(
    src: Path, dest: Path, modes: Mapping[Path, tuple[int, int]] = {}
) -> tuple[DirModes, dict[str, int]]:
    """Recreate ``src`` at ``dest`` (which must not exist): directories copied (left writable
    by their owner), symlinks copied, regular files hard-linked. Returns each new directory's
    (mode, mtime) to apply when the tree is complete (``modes`` overrides them per ``src``
    directory), and relative path → inode of every file linked."""
    is_root = os.geteuid() == 0
    pending: DirModes = {}
    inodes: dict[str, int] = {}
    stack = [(str(src), str(dest), "")]
    while stack:
        source_dir, target, rel = stack.pop()
        st = os.lstat(source_dir)
        os.mkdir(target, 0o700)
        if is_root:
            os.lchown(target, st.st_uid, st.st_gid)
        pending[Path(target)] = modes.get(Path(source_dir)) or (
            stat.S_IMODE(st.st_mode) | stat.S_IRWXU,
            int(st.st_mtime),
        )
        with os.scandir(source_dir) as entries:
            for entry in entries:
                copy = os.path.join(target, entry.name)
                if entry.is_symlink():
                    link = entry.stat(follow_symlinks=False)
                    os.symlink(os.readlink(entry.path), copy)
                    if is_root:
                        os.lchown(copy, link.st_uid, link.st_gid)
                    os.utime(copy, ns=(link.st_mtime_ns, link.st_mtime_ns), follow_symlinks=False)
                elif entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, copy, f"{rel}{entry.name}/"))
                elif entry.is_file(follow_symlinks=False):
                    os.link(entry.path, copy)
                    inodes[rel + entry.name] = entry.inode()
    return pending, inodes


def apply_dir_modes(root: Path, modes: DirModes) -> None:
    """Directory modes and times, deepest first; a directory a later layer replaced by a
    symlink (or removed) is left alone."""
    real_root = os.path.realpath(root)
    for path, (mode, mtime) in sorted(modes.items(), reverse=True):
        candidate = os.path.join(real_root, os.path.relpath(path, root))
        if os.path.realpath(candidate) != candidate or not os.path.isdir(candidate):
            continue
        os.chmod(candidate, mode)
        os.utime(candidate, (mtime, mtime), follow_symlinks=False)


def share_new_files(
    root: Path, pool: Path, known: Mapping[int, str], written: Mapping[str, str] = {}
) -> tuple[dict[str, str], dict[int, str]]:
    """Share the files under ``root`` that are not pool inodes yet (``known``: inode → sha256
    of files already shared) with the pool, as :func:`~neurodesk.store.dedupe.dedupe_tree`
    does; ``written``: relative path → sha256 of files hashed as they were unpacked
    (:attr:`~neurodesk.image.layers.LayerApplier.hashes`), not read again. Returns relative
    path → sha256 hex and inode → sha256 hex of every regular file."""
    hashes: dict[str, str] = {}
    now_known: dict[int, str] = {}
    stack = [(str(root), "")]
    while stack:
        directory, rel = stack.pop()
        with os.scandir(directory) as entries:
            found = list(entries)
        for entry in found:
            if entry.is_dir(follow_symlinks=False):
                stack.append((entry.path, f"{rel}{entry.name}/"))
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            sha = known.get(entry.inode())
            if sha is None:
                sha, inode = _share(entry.path, pool, written.get(rel + entry.name))
            else:
                inode = entry.inode()
            hashes[rel + entry.name] = sha
            now_known[inode] = sha
    return hashes, now_known


def _share(path: str, pool: Path, sha256: str | None) -> tuple[str, int]:
    """Link one new file with its pool twin (or make it the pool's copy); its sha256 and the
    inode it ends up as. ``sha256``: its content hash when already known."""
    st = os.lstat(path)
    if st.st_size == 0:
        return EMPTY_SHA256, st.st_ino
    key = file_key(path, st, sha256)
    return key.split("-", 1)[0], share_file(path, st, key, pool)


class LayerStates:
    """The ``layers/`` directory of one store."""

    def __init__(self, store_root: Path) -> None:
        self.root = store_root / "layers"
        self.images = store_root / "images"

    def path(self, chain: str) -> Path:
        return self.root / chain.removeprefix("sha256:")

    def _load(self, directory: Path, count: int, rootfs: Path) -> Snapshot | None:
        try:
            data = json.loads((directory / STATE_NAME).read_text())
            hashes = {str(k): str(v) for k, v in dict(data["hashes"]).items()}
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return Snapshot(count, rootfs, hashes) if rootfs.is_dir() else None

    def longest_prefix(self, chains: list[str]) -> Snapshot | None:
        """The stored state covering the most leading layers of ``chains``, if any."""
        finals = self._image_finals()
        for count in range(len(chains), 0, -1):
            chain = chains[count - 1]
            directory = self.path(chain)
            found = self._load(directory, count, directory / "rootfs")
            if found is None and chain in finals:
                found = self._load(finals[chain], count, finals[chain] / "rootfs")
            if found is not None:
                return found
        return None

    def _image_finals(self) -> dict[str, Path]:
        """Final chain id → image directory, for images that recorded their chains."""
        finals: dict[str, Path] = {}
        if not self.images.is_dir():
            return finals
        for image_dir in self.images.iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError, TypeError):
                chains = json.loads((image_dir / CHAINS_NAME).read_text())
                finals[str(chains[-1])] = image_dir
        return finals

    def used_chains(self) -> set[str]:
        """Hex chain ids some image names."""
        used: set[str] = set()
        if not self.images.is_dir():
            return used
        for image_dir in self.images.iterdir():
            with contextlib.suppress(OSError, ValueError, TypeError):
                chains = json.loads((image_dir / CHAINS_NAME).read_text())
                used.update(str(c).removeprefix("sha256:") for c in chains)
        return used


def write_state(directory: Path, hashes: Mapping[str, str]) -> None:
    """``state.json`` of a snapshot or image directory being prepared under tmp/."""
    (directory / STATE_NAME).write_text(json.dumps({"hashes": dict(hashes)}))
