"""Writing SIF files: a root filesystem as the squashfs system partition of a SIF container.

The layout we write (the SIF format of Apptainer/Singularity, all integers little-endian)::

    0        global header, 128 bytes: launch line, "SIF_MAGIC", version "01", arch,
             a random UUID, times, descriptor counts, where the descriptors and data are
    4096     descriptor table: 48 descriptors of 585 bytes (unused ones all zero)
    32176    end of the table; data starts here
    32768    the squashfs image (primary system partition, aligned to 4096 as Apptainer does)
    ...      a JSON labels object

``mksquashfs -o 32768`` writes the file system straight into place (no copy of a multi-GB
file); the header and descriptors are written afterwards into the bytes before it. The result
is what ``unsquashfs -o 32768``, ``squashfuse -o offset=32768``, Apptainer and our own reader
(:mod:`neurodesk.image.squashfs`) accept.

Apptainer keeps an image's environment and labels inside the file system under
``/.singularity.d``; where the root filesystem lacks them, they are added from the image's
config as generated files (values quoted for ``sh``: image metadata is untrusted).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from neurodesk.errors import ExternalCommandError, NeurodeskError
from neurodesk.image.squashfs import (
    DATA_LABELS,
    DATA_PARTITION,
    FS_SQUASH,
    PART_PRIMSYS,
    SIF_DESCRIPTOR,
    SIF_HEADER,
    SIF_MAGIC,
    SIF_PARTITION_EXTRA,
)
from neurodesk.systools import require

LAUNCH = b"#!/usr/bin/env run-singularity\n"
VERSION = b"01"
DESCRIPTORS_OFFSET = 4096
DESCRIPTORS_CAPACITY = 48
DATA_OFFSET = DESCRIPTORS_OFFSET + DESCRIPTORS_CAPACITY * SIF_DESCRIPTOR.size
PARTITION_ALIGN = 4096
PARTITION_OFFSET = -(-DATA_OFFSET // PARTITION_ALIGN) * PARTITION_ALIGN  # 32768
DEFAULT_GROUP = 0xF0000001  # the first descriptor group, as Apptainer numbers it
# Go architecture names and `uname -m` names → SIF's two-digit codes.
ARCH_CODES = {
    "386": b"01",
    "i686": b"01",
    "amd64": b"02",
    "x86_64": b"02",
    "arm": b"03",
    "arm64": b"04",
    "aarch64": b"04",
    "ppc64": b"05",
    "ppc64le": b"06",
    "s390x": b"11",
}
COMPRESSIONS = ("gzip", "zstd", "xz", "lz4", "lzo")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class SifFile:
    """A SIF file written by :func:`write_sif`."""

    path: Path
    size: int
    partition_offset: int
    partition_size: int


def _arch_code(arch: str | None) -> bytes:
    name = (arch or platform.machine()).lower()
    code = ARCH_CODES.get(name)
    if code is None:
        raise NeurodeskError(
            f"cannot write a SIF for architecture {name!r}",
            hint=f"SIF knows {', '.join(sorted(ARCH_CODES))}",
        )
    return code


def environment_script(env: Mapping[str, str]) -> str:
    """``/.singularity.d/env/90-environment.sh`` for ``env``: one quoted export per variable."""
    lines = ["#!/bin/sh", "# written by neurodesk from the image's config"]
    for key, value in env.items():
        if _ENV_NAME.match(key) and key not in ("HOME", "PWD", "SHLVL"):
            lines.append(f"export {key}={shlex.quote(value)}")
    return "\n".join(lines) + "\n"


# The action scripts Apptainer runs inside a container (`apptainer exec|run`), for root
# filesystems that do not bring their own: read the environment, then run the command.
EXEC_ACTION = """#!/bin/sh
for script in /.singularity.d/env/*.sh; do
    if [ -f "$script" ]; then . "$script"; fi
done
exec "$@"
"""
RUN_ACTION = """#!/bin/sh
for script in /.singularity.d/env/*.sh; do
    if [ -f "$script" ]; then . "$script"; fi
done
if [ -x /.singularity.d/runscript ]; then exec /.singularity.d/runscript "$@"; fi
exec /bin/sh "$@"
"""
RUNSCRIPT = """#!/bin/sh
exec /bin/sh "$@"
"""


def _metadata_files(
    rootfs: Path, env: Mapping[str, str], labels: Mapping[str, str]
) -> dict[str, tuple[str, int]]:
    """The ``/.singularity.d`` files the root filesystem lacks: path → (contents, mode)."""
    wanted = {
        ".singularity.d/env/90-environment.sh": (environment_script(env), 0o644),
        ".singularity.d/labels.json": (json.dumps(dict(labels), indent=2) + "\n", 0o644),
        ".singularity.d/actions/exec": (EXEC_ACTION, 0o755),
        ".singularity.d/actions/run": (RUN_ACTION, 0o755),
        ".singularity.d/runscript": (RUNSCRIPT, 0o755),
    }
    return {
        path: spec
        for path, spec in wanted.items()
        if not (os.path.lexists(rootfs / path) or _blocked(rootfs, path))
    }


def _blocked(rootfs: Path, path: str) -> bool:
    """True when a parent of ``path`` exists in the image but is not a plain directory."""
    parts = Path(path).parts[:-1]
    for i in range(1, len(parts) + 1):
        parent = rootfs.joinpath(*parts[:i])
        if os.path.lexists(parent) and (parent.is_symlink() or not parent.is_dir()):
            return True
    return False


def _pseudo_definitions(rootfs: Path, files: Mapping[str, tuple[Path, int]]) -> list[str]:
    """mksquashfs ``-p`` definitions adding ``files`` (image path → (host file, mode))."""
    definitions: list[str] = []
    made: set[str] = set()
    for image_path, (host_file, mode) in sorted(files.items()):
        parts = Path(image_path).parts
        for i in range(1, len(parts)):
            directory = "/".join(parts[:i])
            if directory not in made and not os.path.lexists(rootfs / directory):
                definitions.append(f"{directory} d 755 0 0")
            made.add(directory)
        # The command runs under /bin/sh in mksquashfs: quote the host path for it.
        source = shlex.quote(str(host_file))
        definitions.append(f"{image_path} f {mode:o} 0 0 cat {source}")
    return definitions


def _safe_image_path(path: str) -> str:
    clean = Path(path.strip("/"))
    if not path.strip("/") or any(p in ("..", ".") for p in clean.parts) or " " in path:
        raise NeurodeskError(f"cannot add {path!r} to a SIF", hint="use a plain relative path")
    return str(clean)


def write_sif(
    rootfs: Path,
    dest: Path,
    env: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    arch: str | None = None,
    compression: str = "gzip",
    extra_files: Mapping[str, Path] | None = None,
) -> SifFile:
    """Write ``rootfs`` as the primary system partition of a new SIF file at ``dest``.

    ``env``/``labels`` (the image's config) become ``/.singularity.d`` files where the root
    filesystem lacks them, and the labels also a SIF JSON-labels object. ``extra_files`` adds
    host files to the image (image path → host file). ``dest`` appears complete or not at all.
    """
    mksquashfs = require("mksquashfs", "write SIF files")
    if compression not in COMPRESSIONS:
        raise NeurodeskError(
            f"unknown squashfs compression {compression!r}", hint=f"use {', '.join(COMPRESSIONS)}"
        )
    if not rootfs.is_dir():
        raise NeurodeskError(f"{rootfs} is not a directory", hint="export an unpacked image")
    code = _arch_code(arch)
    env, labels = dict(env or {}), dict(labels or {})
    label_bytes = json.dumps(labels, sort_keys=True).encode()
    dest = dest.absolute()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with tempfile.TemporaryDirectory(prefix="nd-sif-") as stage_name:
            stage = Path(stage_name)
            files: dict[str, tuple[Path, int]] = {}
            for i, (path, (text, mode)) in enumerate(_metadata_files(rootfs, env, labels).items()):
                host = stage / f"meta-{i}"
                host.write_text(text)
                files[path] = (host, mode)
            for image_path, host_file in (extra_files or {}).items():
                files[_safe_image_path(image_path)] = (host_file.absolute(), 0o644)
            args = [
                mksquashfs,
                str(rootfs),
                str(tmp),
                "-o",
                str(PARTITION_OFFSET),
                "-noappend",
                "-no-xattrs",
                "-comp",
                compression,
                "-quiet",
                "-no-progress",
            ]
            if os.geteuid() != 0:
                args.append("-all-root")  # an unprivileged unpack could not keep owners anyway
            for definition in _pseudo_definitions(rootfs, files):
                args += ["-p", definition]
            proc = subprocess.run(args, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ExternalCommandError(
                f"mksquashfs could not pack {rootfs}",
                log_tail=(proc.stderr or proc.stdout).strip().splitlines()[-5:],
                hint="check free space and that the image directory is readable",
            )
        partition_size = tmp.stat().st_size - PARTITION_OFFSET
        now = int(time.time())
        with tmp.open("r+b") as handle:
            handle.seek(PARTITION_OFFSET + partition_size)
            handle.write(label_bytes)
            descriptors = [
                _descriptor(
                    1,
                    DATA_PARTITION,
                    PARTITION_OFFSET,
                    partition_size,
                    PARTITION_OFFSET - DATA_OFFSET + partition_size,
                    now,
                    SIF_PARTITION_EXTRA.pack(FS_SQUASH, PART_PRIMSYS, code + b"\0"),
                ),
                _descriptor(
                    2,
                    DATA_LABELS,
                    PARTITION_OFFSET + partition_size,
                    len(label_bytes),
                    len(label_bytes),
                    now,
                    b"",
                ),
            ]
            table = b"".join(descriptors).ljust(DESCRIPTORS_CAPACITY * SIF_DESCRIPTOR.size, b"\0")
            data_size = PARTITION_OFFSET - DATA_OFFSET + partition_size + len(label_bytes)
            header = SIF_HEADER.pack(
                LAUNCH.ljust(32, b"\0"),
                SIF_MAGIC + b"\0",
                VERSION + b"\0",
                code + b"\0",
                uuid.uuid4().bytes,
                now,
                now,
                DESCRIPTORS_CAPACITY - len(descriptors),
                DESCRIPTORS_CAPACITY,
                DESCRIPTORS_OFFSET,
                len(table),
                DATA_OFFSET,
                data_size,
            )
            handle.seek(0)
            handle.write(header.ljust(DESCRIPTORS_OFFSET, b"\0"))
            handle.write(table)
            handle.write(b"\0" * (PARTITION_OFFSET - DATA_OFFSET))
            handle.flush()
            os.fsync(handle.fileno())
        tmp.chmod(0o644)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return SifFile(dest, dest.stat().st_size, PARTITION_OFFSET, partition_size)


def _descriptor(
    ident: int, datatype: int, offset: int, size: int, padded: int, now: int, extra: bytes
) -> bytes:
    return SIF_DESCRIPTOR.pack(
        datatype,
        True,
        ident,
        DEFAULT_GROUP,
        0,  # linked to nothing
        offset,
        size,
        padded,
        now,
        now,
        0,
        0,
        b"",
        extra,
    )
