"""SIF images held as one file and mounted on demand (squashfuse; httpdirfs for lazy ones).

An image held as a SIF has, under ``store/images/<hex>/``::

    image.sif          the verified SIF file (absent while a lazy image is not fetched yet)
    sif.json           offset and size of its squashfs partition, its sha256, the URL if lazy
    rootfs -> mnt/sif  a symlink: what runtimes and wrappers use as the root filesystem
    mnt/sif/           squashfuse mount point of image.sif (holds a marker file when empty)
    mnt/lazy/          squashfuse mount point of the remote file, read through remote/
    mnt/unpacked/      where FUSE is not usable: the partition unpacked once with unsquashfs
    remote/            httpdirfs mount point (single-file mode) of the SIF's URL
    mount.sh           POSIX sh that makes the mount; wrappers and ``neurodesk exec`` run it
    mount.lock         flock(1) lock so two first calls do not race

Mounts are made on first use and shared by every later call. Switching ``rootfs`` (lazy →
local after a prefetch) is one ``rename`` of the symlink: running commands keep the mounts
their namespaces hold; new commands see the new one.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import shlex
import shutil
import signal
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurodesk.errors import NeurodeskError
from neurodesk.store.httpdirfs import SEGMENT_MB

SIF_FILE = "image.sif"
META_FILE = "sif.json"
SCRIPT = "mount.sh"
LOCK = "mount.lock"
ROOTFS = "rootfs"
REMOTE = "remote"
REMOTE_PID = "remote.pid"  # pid of the httpdirfs of a lazy image
MARKER = ".neurodesk-unmounted"
MOUNT_POINTS = ("mnt/sif", "mnt/lazy")
UNPACKED = "mnt/unpacked"
# At most this much of the squashfs tables is read ahead when a lazy image is mounted.
WARM_CAP = 64 << 20
# Set NEURODESK_FUSE=off to never mount (images are then unpacked once, as without FUSE).
FUSE_SWITCH = "NEURODESK_FUSE"
# What mounts a squashfs partition, best first, with its options (``offset=`` is added). A SIF
# never changes, so the kernel may keep everything it learns about it: squashfuse_ll (the
# low-level API) has it keep every entry, attribute and failed lookup for ever and file pages
# across opens; squashfuse (the high-level API, 1 s and failed lookups not kept) is told the
# same with options. ``ro`` spares a GETATTR after each directory listing (the kernel marks
# atime stale only where it could write). Without these a call of a wrapper paid some 40 FUSE
# round trips (ld.so's and execvp's misses, re-lookups after 1 s); with squashfuse_ll, ~17
# remain: an OPEN and a RELEASE per file it opens and a READLINK per symlink (not cached).
_FOREVER = 365 * 24 * 3600
MOUNTERS: tuple[tuple[str, str], ...] = (
    ("squashfuse_ll", "ro"),
    (
        "squashfuse",
        f"ro,kernel_cache,entry_timeout={_FOREVER},attr_timeout={_FOREVER},"
        f"negative_timeout={_FOREVER}",
    ),
)


@dataclass(frozen=True)
class SifMeta:
    """What ``sif.json`` records about an image held as a SIF."""

    offset: int
    size: int
    sha256: str  # of the whole file, "sha256:<hex>"
    url: str | None = None
    remote_name: str | None = None
    # Where the squashfs tables (inodes, directories, fragments, ids) lie in the file: a lazy
    # mount reads them ahead in parallel, since httpdirfs 1.2.5 spends ~100 ms per request.
    tables: tuple[int, int] = (0, 0)
    # The httpdirfs a lazy mount runs and its version (store/httpdirfs.py chose it at install),
    # and its block cache directory (None: off, as with httpdirfs before 1.2.10).
    httpdirfs: str | None = None
    httpdirfs_version: str | None = None
    cache: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": 1,
            "offset": self.offset,
            "size": self.size,
            "sha256": self.sha256,
            "url": self.url,
            "remote_name": self.remote_name,
            "tables": list(self.tables),
            "httpdirfs": self.httpdirfs,
            "httpdirfs_version": self.httpdirfs_version,
            "cache": self.cache,
        }

    @classmethod
    def load(cls, image_dir: Path) -> SifMeta | None:
        path = image_dir / META_FILE
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        return cls(
            int(data["offset"]),
            int(data["size"]),
            str(data["sha256"]),
            data.get("url"),
            data.get("remote_name"),
            _span(data.get("tables")),
            _text(data.get("httpdirfs")),
            _text(data.get("httpdirfs_version")),
            _text(data.get("cache")),
        )


def _span(value: Any) -> tuple[int, int]:
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (value[0], value[1])
    return (0, 0)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def fuse_problem() -> str | None:
    """Why squashfuse cannot mount here, or None when it can."""
    if os.environ.get(FUSE_SWITCH, "").lower() in ("off", "0", "no", "false"):
        return f"{FUSE_SWITCH}=off"
    if mounter() is None:
        return "squashfuse is not installed (apt-get install squashfuse)"
    if not os.path.exists("/dev/fuse"):
        return "there is no /dev/fuse"
    # libfuse opens /dev/fuse itself; a non-root mount(2) then goes through setuid fusermount3
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "no read-write access to /dev/fuse"
    if os.geteuid() == 0:
        return None
    helper = shutil.which("fusermount3") or shutil.which("fusermount")
    if helper is None:
        return "no fusermount3 (apt-get install fuse3)"
    if not os.stat(helper).st_mode & stat.S_ISUID:
        return f"{helper} is not setuid"
    return None


def mounter() -> tuple[str, str] | None:
    """The squashfuse here (the first of MOUNTERS on PATH) and its options, or None."""
    for name, options in MOUNTERS:
        path = shutil.which(name)
        if path is not None:
            return path, options
    return None


def squashfuse_argv(offset: int, source: Path, point: Path) -> list[str]:
    """The command that mounts the squashfs at ``offset`` of ``source`` read-only at ``point``."""
    found = mounter()
    if found is None:
        raise NeurodeskError(
            "squashfuse is not installed", hint="install it: sudo apt-get install squashfuse"
        )
    path, options = found
    return [path, "-o", f"{options},offset={int(offset)}", str(source), str(point)]


# The body of every mount.sh: the one place that mounts (`neurodesk exec` runs it too). Values
# in the header are integers or quoted by render_script; the body is fixed text.
SCRIPT_BODY = Path(__file__).with_name("mount_sif.sh")


def render_script(image_id: str, meta: SifMeta, wait: int = 60, stall: float = 10.0) -> str:
    """mount.sh for one image: ``wait`` s for another call's mount, ``stall`` s before a lazy
    image's server that sends nothing is taken as gone (config ``timeout``)."""
    header = [
        "#!/bin/sh",
        "# Written by neurodesk: mounts this image's SIF read-only at rootfs/ on first use,",
        "# shared by every later call; no Python runs here. flock(1) keeps two first calls from",
        "# racing; a mount that died is detached and made again.",
        f"nd_id={shlex.quote(image_id)}",
        f"nd_offset={int(meta.offset)}",
        f"nd_size={int(meta.size)}",
        f"nd_url={shlex.quote(meta.url or '')}",
        f"nd_remote={shlex.quote(meta.remote_name or '')}",
        f"nd_wait={int(wait)}",
        f"nd_stall={max(1, math.ceil(stall))}",
        f"nd_tables={int(meta.tables[0])}",
        f"nd_tables_end={min(int(meta.tables[1]), int(meta.tables[0]) + WARM_CAP)}",
        f"nd_httpdirfs={shlex.quote(meta.httpdirfs or 'httpdirfs')}",
        f"nd_cache={shlex.quote(meta.cache or '')}",
        f"nd_segment={SEGMENT_MB}",
        # the squashfuse commands to try, best first, and their options (MOUNTERS)
        f"nd_mounters={shlex.quote(' '.join(name for name, _ in MOUNTERS))}",
        *(f"nd_opts_{name}={shlex.quote(options)}" for name, options in MOUNTERS),
    ]
    return "\n".join(header) + "\n" + SCRIPT_BODY.read_text()


def lay_out(work: Path, image_id: str, meta: SifMeta, lazy: bool, stall: float = 10.0) -> None:
    """Make the mount points, the ``rootfs`` link, ``sif.json`` and ``mount.sh`` in ``work``."""
    for point in MOUNT_POINTS:
        (work / point).mkdir(parents=True)
        (work / point / MARKER).write_text("this image is not mounted; its wrappers mount it\n")
    (work / REMOTE).mkdir()
    (work / ROOTFS).symlink_to(MOUNT_POINTS[1] if lazy else MOUNT_POINTS[0])
    (work / META_FILE).write_text(json.dumps(meta.to_json(), indent=2) + "\n")
    script = work / SCRIPT
    script.write_text(render_script(image_id, meta, stall=stall))
    script.chmod(0o755)


def is_held_sif(image_dir: Path) -> bool:
    return (image_dir / SCRIPT).is_file() and (image_dir / ROOTFS).is_symlink()


def refresh_script(image_dir: Path) -> None:
    """Rewrite a ``mount.sh`` that an earlier neurodesk wrote (another body, or mounters) with
    today's, keeping its image's values: images imported before then mount as well as new
    ones. Atomic (a call running the old one keeps reading it); a store this user cannot
    write keeps its script."""
    script = image_dir / SCRIPT
    meta = SifMeta.load(image_dir)
    try:
        text = script.read_text()
    except OSError:
        return
    values: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name in ("nd_id", "nd_stall"):
            values[name] = (shlex.split(value) or [""])[0]
    if meta is None or "nd_id" not in values or not values.get("nd_stall", "").isdigit():
        return
    fresh = render_script(values["nd_id"], meta, stall=float(values["nd_stall"]))
    if fresh == text:
        return
    new = image_dir / (SCRIPT + ".new")
    try:
        new.write_text(fresh)
        new.chmod(0o755)
        os.replace(new, script)
    except OSError:
        with suppress(OSError):
            new.unlink()


def ensure_mounted(image_dir: Path) -> None:
    """Mount the image (if it is a SIF held in the store and not mounted yet)."""
    if not is_held_sif(image_dir):
        return
    refresh_script(image_dir)
    proc = subprocess.run(["sh", str(image_dir / SCRIPT)], check=False)
    if proc.returncode != 0:
        raise NeurodeskError(
            f"could not mount the image in {image_dir}",
            hint="the line above says why",
        )


@contextmanager
def mount_lock(image_dir: Path) -> Iterator[None]:
    """The lock mount.sh takes (flock on mount.lock), for changes made from Python."""
    with (image_dir / LOCK).open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _mounted(path: Path) -> bool:
    """Mounted, or a dead mount."""
    return _stale(path) or os.path.ismount(path)


def _stale(path: Path) -> bool:
    """A FUSE mount whose daemon died: opening it fails with 'transport endpoint is not
    connected' (stat may not: the kernel keeps a squashfuse_ll mount's attributes for ever)."""
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_DIRECTORY))
    except OSError as exc:
        return exc.errno == errno.ENOTCONN
    return False


def detach(path: Path) -> None:
    """Lazily unmount ``path`` if something is mounted there (alive or dead)."""
    if not (_stale(path) or _mounted(path)):
        return
    for argv in (["fusermount3", "-u", "-z"], ["fusermount", "-u", "-z"], ["umount", "-l"]):
        if shutil.which(argv[0]) is None:
            continue
        proc = subprocess.run([*argv, str(path)], capture_output=True, check=False)
        if proc.returncode == 0:
            return


def end_remote(image_dir: Path) -> None:
    """Kill the httpdirfs of a lazy image (pid in ``remote.pid``, as mount.sh records it)."""
    try:
        pid = int((image_dir / REMOTE_PID).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except (OSError, ValueError):
        return
    if b"httpdirfs" in cmdline and str(image_dir / REMOTE).encode() in cmdline:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def unmount_all(image_dir: Path) -> None:
    """Unmount everything of an image held as a SIF (before it is deleted)."""
    if not (image_dir / META_FILE).exists():
        return
    end_remote(image_dir)  # first: a stalled httpdirfs would hang the stat calls below
    for point in (*MOUNT_POINTS, REMOTE):
        detach(image_dir / point)
    meta = SifMeta.load(image_dir)
    if meta is not None and meta.cache is not None:
        shutil.rmtree(meta.cache, ignore_errors=True)  # its httpdirfs block cache


def state(image_dir: Path) -> str:
    """How an image held as a SIF is held right now, for ``neurodesk images``."""
    meta = SifMeta.load(image_dir)
    link = image_dir / ROOTFS
    target = os.readlink(link) if link.is_symlink() else ""
    if target == UNPACKED:
        return "SIF, unpacked (no FUSE)"
    lazy = target == MOUNT_POINTS[1]
    kind = "lazy SIF (HTTP)" if lazy else "mounted SIF"
    point = image_dir / target
    failed = image_dir / "remote.failed"
    if _stale(point) or (lazy and (_stale(image_dir / REMOTE) or _nonempty(failed))):
        return f"{kind}, mount died"
    if not _mounted(point):
        return f"{kind}, not mounted yet"
    if lazy and meta is not None and (image_dir / (SIF_FILE + ".part")).exists():
        return f"{kind}, prefetching"
    return kind


def _nonempty(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def switch_rootfs(image_dir: Path, target: str) -> None:
    """Point ``rootfs`` at ``target`` in one rename: running commands are not disturbed."""
    new = image_dir / (ROOTFS + ".new")
    new.unlink(missing_ok=True)
    new.symlink_to(target)
    os.replace(new, image_dir / ROOTFS)


# The wrappers' mount-on-demand step (their template's nd_prepare_root): fork-free while the
# mount is alive; else mount.sh (flock'd) mounts, remounts a dead mount, or unpacks once.
# Opening the root asks the daemon (one FUSE round trip): with squashfuse_ll the kernel answers
# stat from its cache for ever, even when the daemon died. (`true`: a failed redirection of `:`
# would end the shell.) nd_sif names the SIF file itself, for runtimes that run it directly
# (apptainer, singularity).
PREPARE_STEP = """\
  # neurodesk: this image is a SIF held in the store, mounted on first use (its mount.sh)
  nd_sif_dir=${nd_root%/*}
  if [ ! -d "$nd_root/usr" ] || ! { true <"$nd_root/."; } 2>/dev/null \
    || [ ! -d "$nd_sif_dir/remote/." ] || [ -s "$nd_sif_dir/remote.failed" ]; then
    if [ -f "$nd_sif_dir/mount.sh" ]; then
      sh "$nd_sif_dir/mount.sh" || return 1
    fi
  fi
  [ -f "$nd_sif_dir/image.sif" ] && nd_sif=$nd_sif_dir/image.sif
  return 0"""


def prepare_step(image_dir: Path) -> str | None:
    """The shell step a wrapper runs before using the image, for images held as a SIF."""
    return PREPARE_STEP if is_held_sif(image_dir) else None


def sif_file(rootfs: Path) -> Path | None:
    """The local SIF file behind a held image's ``rootfs`` (for runtimes that run SIFs)."""
    candidate = rootfs.parent / SIF_FILE
    if rootfs.is_symlink() and rootfs.name == ROOTFS and candidate.is_file():
        return candidate
    return None
