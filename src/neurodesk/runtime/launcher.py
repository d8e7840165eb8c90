"""The signal-forwarding launcher of the wrappers, compiled from ``launcher.c`` where they live.

A wrapper ``exec``s ``PREFIX/libexec/neurodesk-launch bwrap ...``: the launcher is the process
the caller knows, passes its signals on to the program in the container and ends as the program
ended (see launcher.c). It is a small C program because a POSIX sh cannot start a background
job without ignoring SIGINT and SIGQUIT in it; built without a C library it starts in a few
tens of microseconds. Built from source on this machine with the C compiler (``cc``), once per
source version (a build is reused from the user's cache); where there is no compiler the
wrappers run bwrap directly and signals kill the program outright.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

NAME = "neurodesk-launch"
SOURCE = Path(__file__).with_name("launcher.c")
# Where a wrapper looks for it, relative to the install prefix.
PREFIX_PATH = Path("libexec") / NAME
NOLIBC = [
    "-DND_NOLIBC",
    "-static",
    "-nostdlib",
    "-ffreestanding",
    "-fno-builtin",
    "-fno-stack-protector",
]


def _digest() -> str:
    return hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "neurodesk"


def _compile(target: Path) -> bool:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{NAME}.", dir=target.parent)
    os.close(fd)
    # Without a C library where it has the raw system calls (x86-64, arm64): a static glibc
    # program's start-up alone costs half a millisecond on some virtual machines, this one a
    # twentieth. Else static (no dynamic loader at each start), else plain.
    for extra in (NOLIBC, ["-static"], []):
        argv = [compiler, "-O2", "-s", *extra, "-o", tmp, str(SOURCE)]
        try:
            done = subprocess.run(argv, capture_output=True, timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            os.chmod(tmp, 0o755)
            os.replace(tmp, target)
            return True
    with contextlib.suppress(OSError):
        os.unlink(tmp)
    return False


def built_launcher() -> Path | None:
    """The launcher of the current source, compiled once into the user's cache; None without
    a working C compiler."""
    cached = _cache_dir() / f"{NAME}-{_digest()}"
    if cached.is_file() and os.access(cached, os.X_OK) and cached.stat().st_uid == os.geteuid():
        return cached
    try:
        return cached if _compile(cached) else None
    except OSError:
        return None


def install_launcher(prefix: Path) -> Path | None:
    """``PREFIX/libexec/neurodesk-launch``, current with the source; None when it cannot be
    built here (the wrappers then run their runtime directly)."""
    target = prefix / PREFIX_PATH
    built = built_launcher()
    if built is None:
        return None
    if target.is_file() and target.read_bytes() == built.read_bytes():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    target.parent.chmod(0o755)
    tmp = target.with_name(f".{NAME}.{os.getpid()}")
    shutil.copyfile(built, tmp)
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)
    return target
