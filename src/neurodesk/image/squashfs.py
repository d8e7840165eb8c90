"""Squashfs images: plain ``.sqfs`` files and the squashfs partition inside a SIF file.

A SIF file (Apptainer/Singularity's format) starts with a 128-byte global header followed, at
``descroff``, by a table of fixed-size (585-byte) little-endian descriptors; the one with data
type 0x4004 (partition), file-system type 1 (squashfs) and partition type 1 or 2 (system,
primary system) holds the root file system at ``fileoff``/``filelen``. We extract it with
``unsquashfs -o <offset>`` and then make the tree safe to run (no device nodes, no set-id bits).
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from neurodesk.errors import ExternalCommandError
from neurodesk.image.limits import Budget, UnpackLimits
from neurodesk.image.oci import ImageFormatError
from neurodesk.systools import require

SQUASHFS_MAGIC = b"hsqs"
SIF_MAGIC = b"SIF_MAGIC"
SIF_HEADER = struct.Struct("<32s10s3s3s16sqqqqqqqq")
SIF_DESCRIPTOR = struct.Struct("<i?IIIqqqqqqq128s384s")
SIF_PARTITION_EXTRA = struct.Struct("<ii3s")
DATA_LABELS = 0x4003
DATA_PARTITION = 0x4004
FS_SQUASH = 1
PART_SYSTEM, PART_PRIMSYS = 1, 2
SPECIAL_FILES = {stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK}


def is_squashfs(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == SQUASHFS_MAGIC


def is_sif(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(SIF_HEADER.size)[32:41] == SIF_MAGIC


@dataclass(frozen=True)
class SifObject:
    datatype: int
    offset: int
    length: int
    fstype: int = 0
    parttype: int = 0


def sif_objects(path: Path) -> list[SifObject]:
    """The used descriptors of a SIF file."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        header = handle.read(SIF_HEADER.size)
        if len(header) < SIF_HEADER.size or header[32:41] != SIF_MAGIC:
            raise ImageFormatError(f"{path} is not a SIF file")
        fields = SIF_HEADER.unpack(header)
        total, descroff = fields[8], fields[9]  # dtotal, descroff
        if not 0 < total <= 4096 or descroff + total * SIF_DESCRIPTOR.size > size:
            raise ImageFormatError(f"{path}: SIF descriptor table is malformed")
        handle.seek(descroff)
        table = handle.read(total * SIF_DESCRIPTOR.size)
    objects = []
    for i in range(total):
        raw = SIF_DESCRIPTOR.unpack_from(table, i * SIF_DESCRIPTOR.size)
        datatype, used, offset, length, extra = raw[0], raw[1], raw[5], raw[6], raw[13]
        if not used:
            continue
        if offset < 0 or length < 0 or offset + length > size:
            raise ImageFormatError(f"{path}: SIF object {i} lies outside the file")
        fstype, parttype, _arch = SIF_PARTITION_EXTRA.unpack_from(extra)
        objects.append(SifObject(datatype, offset, length, fstype, parttype))
    return objects


def sif_root_partition(path: Path) -> SifObject:
    parts = [
        o
        for o in sif_objects(path)
        if o.datatype == DATA_PARTITION and o.parttype in (PART_SYSTEM, PART_PRIMSYS)
    ]
    parts.sort(key=lambda o: o.parttype != PART_PRIMSYS)
    if not parts:
        raise ImageFormatError(f"{path}: the SIF file has no system partition")
    if parts[0].fstype != FS_SQUASH:
        raise ImageFormatError(
            f"{path}: the SIF system partition is not squashfs (type {parts[0].fstype})",
            hint="encrypted and ext3 SIF partitions are not supported",
        )
    return parts[0]


def sif_labels(path: Path) -> bytes | None:
    for obj in sif_objects(path):
        if obj.datatype == DATA_LABELS:
            with path.open("rb") as handle:
                handle.seek(obj.offset)
                return handle.read(obj.length)
    return None


def digest_range(path: Path, offset: int = 0, length: int | None = None) -> str:
    digest = hashlib.sha256()
    remaining = path.stat().st_size - offset if length is None else length
    with path.open("rb") as handle:
        handle.seek(offset)
        while remaining > 0 and (chunk := handle.read(min(1 << 20, remaining))):
            digest.update(chunk)
            remaining -= len(chunk)
    return "sha256:" + digest.hexdigest()


def _check_listing(unsquashfs: str, path: Path, offset: int, limits: UnpackLimits | None) -> None:
    """Count the listed entries against the decompression limits before extracting: a few
    kilobytes of squashfs can hold a gigabyte file."""
    args = [unsquashfs, "-lln", "-n", *(["-o", str(offset)] if offset else []), str(path)]
    proc = subprocess.run(args, capture_output=True, text=True, errors="replace", check=False)
    if proc.returncode != 0:
        return  # the extraction itself reports what is wrong
    compressed = max(path.stat().st_size - offset, 1)
    budget = Budget(limits or UnpackLimits.load(), compressed, f"squashfs {path.name}")
    for line in proc.stdout.splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[0][:1] in "-dlcbps":
            size = int(parts[2]) if parts[0][0] == "-" and parts[2].isdigit() else 0
            budget.take(parts[5], size)


def unsquash(path: Path, dest: Path, offset: int = 0, limits: UnpackLimits | None = None) -> None:
    """Extract a squashfs file system (at ``offset`` in ``path``) into the empty ``dest``,
    within the decompression ``limits`` (default: from the environment)."""
    unsquashfs = require("unsquashfs", "unpack squashfs and SIF images")
    _check_listing(unsquashfs, path, offset, limits)
    args = [unsquashfs, "-n", "-no-xattrs", "-f", "-d", str(dest)]
    if offset:
        args += ["-o", str(offset)]
    proc = subprocess.run([*args, str(path)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ExternalCommandError(
            f"unsquashfs could not extract {path}",
            log_tail=proc.stderr.strip().splitlines()[-5:],
            hint="check that the file is a complete squashfs/SIF image",
        )
    sanitize_tree(dest)


def sanitize_tree(root: Path) -> None:
    """Remove device nodes, fifos and sockets; strip setuid/setgid bits."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_IFMT(st.st_mode) in SPECIAL_FILES:
                os.unlink(path)
            elif st.st_mode & (stat.S_ISUID | stat.S_ISGID) and not stat.S_ISLNK(st.st_mode):
                os.chmod(path, stat.S_IMODE(st.st_mode) & ~(stat.S_ISUID | stat.S_ISGID))
