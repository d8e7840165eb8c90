"""Keeping the store tidy: garbage collection and disk usage with the deduplication ratio."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurodesk.store.layerstate import LayerStates
from neurodesk.store.store import WORK_PREFIX, ImageRecord, Store, _rmtree_writable

# Foreign work directories under tmp/ (a build's export) are only removed once this old.
STALE_SECONDS = 3600


@dataclass
class GcReport:
    images: list[str] = field(default_factory=list)
    blobs: int = 0
    layers: int = 0  # per-layer states (layers/<chain>/) no image uses any more
    files: int = 0
    tmp: int = 0
    cache: int = 0  # files removed from the fetch cache (filled in by the caller)
    bytes_freed: int = 0
    kept_blobs_reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "blobs": self.blobs,
            "layers": self.layers,
            "files": self.files,
            "tmp": self.tmp,
            "cache": self.cache,
            "bytes_freed": self.bytes_freed,
            "kept_blobs_reason": self.kept_blobs_reason,
        }


def _tree_size(path: Path) -> int:
    total = 0
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _blobs_in_use(store: Store, records: list[ImageRecord]) -> set[str] | None:
    """Hex digests of every blob a ref needs; None when that cannot be known for sure."""
    used: set[str] = set()
    for record in records:
        if record.source != "oci":
            continue
        manifest_path = store.blob_path(record.digest)
        if not manifest_path.is_file():
            return None  # stored before manifests were kept: keep every blob to be safe
        manifest = json.loads(manifest_path.read_text())
        used.add(record.digest.removeprefix("sha256:"))
        for descriptor in [manifest.get("config") or {}, *(manifest.get("layers") or [])]:
            used.add(str(descriptor.get("digest", "")).removeprefix("sha256:"))
    return used


def gc(store: Store) -> GcReport:
    """Remove unreferenced images, blobs, shared files and leftovers of interrupted work."""
    report = GcReport()
    if not store.root.is_dir():
        return report
    with store.lock():
        records = store.images()
        wanted_images = {r.digest.removeprefix("sha256:") for r in records if not r.external_rootfs}
        images_dir = store.root / "images"
        if images_dir.is_dir():
            for entry in sorted(images_dir.iterdir()):
                if entry.name not in wanted_images:
                    report.images.append(entry.name)
                    report.bytes_freed += _tree_size(entry)
                    store.drop_image_dir(entry)
        blobs_dir = store.root / "blobs" / "sha256"
        used = _blobs_in_use(store, records)
        if used is None:
            report.kept_blobs_reason = "an image stored by an older version has no manifest blob"
        if blobs_dir.is_dir():
            for blob in blobs_dir.iterdir():
                if blob.name.startswith(".") or (used is not None and blob.name not in used):
                    report.blobs += 1
                    report.bytes_freed += blob.lstat().st_size
                    blob.unlink()
        for records_dir, suffix in (
            (store.root / "tarsplit", ".gz"),
            (store.root / "refetch", ".json"),
        ):
            if not records_dir.is_dir() or used is None:
                continue
            for record in records_dir.iterdir():
                if record.name.removesuffix(suffix) not in used:
                    report.blobs += 1
                    report.bytes_freed += record.lstat().st_size
                    record.unlink()
        layers_dir = LayerStates(store.root).root
        if layers_dir.is_dir():
            used_chains = LayerStates(store.root).used_chains()
            for entry in sorted(layers_dir.iterdir()):
                if entry.name not in used_chains:
                    report.layers += 1
                    report.bytes_freed += _tree_size(entry)
                    store.drop_image_dir(entry)
        # Pool files are dropped after images and layer states, so files only the removed
        # images used go too.
        if store.files_dir.is_dir():
            for sub in store.files_dir.iterdir():
                for shared in sub.iterdir():
                    st = shared.lstat()
                    if st.st_nlink <= 1:
                        report.files += 1
                        report.bytes_freed += st.st_size
                        shared.unlink()
        if store.tmp_root.is_dir():
            now = time.time()
            for entry in store.tmp_root.iterdir():
                # Our own work dirs cannot be in use: every writer holds the lock we hold.
                ours = entry.name.startswith(WORK_PREFIX)
                if ours or now - entry.lstat().st_mtime > STALE_SECONDS:
                    report.tmp += 1
                    report.bytes_freed += _tree_size(entry)
                    if entry.is_dir() and not entry.is_symlink():
                        _rmtree_writable(entry)
                    else:
                        entry.unlink()
        refs_dir = store.root / "refs"
        if refs_dir.is_dir():
            for directory in sorted(refs_dir.glob("**/"), key=lambda p: -len(p.parts)):
                if directory != refs_dir and not any(directory.iterdir()):
                    directory.rmdir()
    return report


@dataclass
class ImageUsage:
    record: ImageRecord
    size: int | None  # apparent size of its files; None for sandboxes used in place
    exclusive: int | None  # bytes no other image shares


@dataclass
class DuReport:
    images: list[ImageUsage]
    logical: int  # what the images would take if nothing were shared
    physical: int  # what they take: every shared inode counted once
    blobs: int
    # Disk blocks: the whole store (every inode once: rootfs, layer states, blobs, records,
    # the pool), and the images' trees each counted alone (what unpacking each one costs).
    store: int = 0
    unpacked: int = 0

    @property
    def footprint(self) -> float:
        return self.store / self.unpacked if self.unpacked else 0.0

    @property
    def ratio(self) -> float:
        return self.logical / self.physical if self.physical else 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "images": [
                {**u.record.to_json(), "size": u.size, "exclusive": u.exclusive}
                for u in self.images
            ],
            "logical_bytes": self.logical,
            "physical_bytes": self.physical,
            "blob_bytes": self.blobs,
            "dedup_ratio": round(self.ratio, 3),
            "store_bytes": self.store,
            "unpacked_bytes": self.unpacked,
            "footprint_ratio": round(self.footprint, 3),
        }


def _inodes(rootfs: Path) -> dict[tuple[int, int], int]:
    found: dict[tuple[int, int], int] = {}
    for dirpath, _dirs, files in os.walk(rootfs):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(st.st_mode):
                found[(st.st_dev, st.st_ino)] = st.st_size
    return found


def du(store: Store) -> DuReport:
    """Sizes per image, and how much hard-linking identical files saves."""
    records = store.images()
    per_digest: dict[str, dict[tuple[int, int], int]] = {}
    for record in records:
        if record.external_rootfs is None and record.digest not in per_digest:
            per_digest[record.digest] = _inodes(record.rootfs) if record.rootfs.is_dir() else {}
    owners: dict[tuple[int, int], int] = {}
    for inodes in per_digest.values():
        for inode in inodes:
            owners[inode] = owners.get(inode, 0) + 1
    usages = []
    for record in records:
        if record.digest not in per_digest:
            usages.append(ImageUsage(record, None, None))
            continue
        inodes = per_digest[record.digest]
        exclusive = sum(size for inode, size in inodes.items() if owners[inode] == 1)
        usages.append(ImageUsage(record, sum(inodes.values()), exclusive))
    logical = sum(sum(inodes.values()) for inodes in per_digest.values())
    union: dict[tuple[int, int], int] = {}
    for inodes in per_digest.values():
        union.update(inodes)
    blobs_dir = store.root / "blobs" / "sha256"
    blobs = _tree_size(blobs_dir) if blobs_dir.is_dir() else 0
    unpacked = sum(disk_usage(store.image_dir(digest) / "rootfs", set()) for digest in per_digest)
    total = disk_usage(store.root, set()) if store.root.is_dir() else 0
    return DuReport(usages, logical, sum(union.values()), blobs, total, unpacked)


def disk_usage(path: Path, seen: set[tuple[int, int]]) -> int:
    """Bytes of disk blocks under ``path`` (as ``du``), each inode not in ``seen`` once."""
    total = 0
    stack = [str(path)]
    while stack:
        directory = stack.pop()
        with contextlib.suppress(OSError):
            st = os.lstat(directory)
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                        continue
                    key = (st.st_dev, entry.inode())
                    if key in seen:
                        continue
                    seen.add(key)
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
    return total
