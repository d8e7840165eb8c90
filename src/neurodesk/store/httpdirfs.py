"""Which httpdirfs lazy SIF mounts run, and whether its block cache may be used.

Asked once, when a lazy image is installed; the answer is written into the image's
``sif.json`` and ``mount.sh``, so no call probes it again. The order: ``$NEURODESK_HTTPDIRFS``
(a path, to choose one by hand), then our own build (``scripts/bootstrap.sh`` builds Debian's
current source package there when the system's is older than 1.2.10), then ``httpdirfs`` on PATH.

Why the version matters: 1.2.5 (Debian 12) waits ~100 ms after every HTTP request (fixed in
1.2.8), and its ``--cache`` returns wrong bytes for a read that crosses one of its download
segments (fixed in 1.2.10), so the cache is only turned on from 1.2.10.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

OURS = Path("/usr/local/lib/neurodesk/bin/httpdirfs")
CHOICE = "NEURODESK_HTTPDIRFS"
CACHE_SAFE = (1, 2, 10)
# The block cache downloads whole segments: the smallest (1 MB) keeps a first command's
# transfer close to what it reads (squashfs blocks are 128 KiB).
SEGMENT_MB = 1
_VERSION = re.compile(rb"HTTPDirFS version (\d+(?:\.\d+)*)")


@dataclass(frozen=True)
class Httpdirfs:
    path: str
    version: tuple[int, ...]

    @property
    def version_text(self) -> str:
        return ".".join(str(part) for part in self.version)

    @property
    def cache_safe(self) -> bool:
        return self.version >= CACHE_SAFE


def find() -> Httpdirfs | None:
    """The httpdirfs to use (see the module's doc), or None when there is none."""
    for candidate in (os.environ.get(CHOICE), str(OURS), shutil.which("httpdirfs")):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return Httpdirfs(candidate, version(candidate))
    return None


def version(path: str) -> tuple[int, ...]:
    """What ``path --version`` says, as numbers; (0,) when it says nothing readable."""
    try:
        proc = subprocess.run([path, "--version"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return (0,)
    found = _VERSION.search(proc.stdout + proc.stderr)
    return tuple(int(part) for part in found.group(1).split(b".")) if found else (0,)


def cache_dir(tool: Httpdirfs | None, cache_root: Path | None, digest: str) -> Path | None:
    """Where the block cache of the image ``digest`` lives, or None when it stays off.

    One directory per image digest: a digest names its bytes, so the cache is never stale,
    and removing the image removes its cache."""
    if tool is None or not tool.cache_safe or cache_root is None:
        return None
    return cache_root / "sif" / digest.removeprefix("sha256:")
