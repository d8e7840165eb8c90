"""Base images: use the local one, else pull it, else make a Debian one with debootstrap."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from neurodesk.build.builder import Builder
from neurodesk.build.process import run_logged
from neurodesk.errors import NeurodeskError
from neurodesk.paths import Paths
from neurodesk.systools import require

DEBIAN_SUITES = {
    "bookworm": "bookworm",
    "12": "bookworm",
    "bullseye": "bullseye",
    "11": "bullseye",
    "trixie": "trixie",
    "13": "trixie",
    "stable": "bookworm",
}
DEFAULT_MIRROR = "http://deb.debian.org/debian"

Say = Callable[[str], None]


def debian_suite(ref: str) -> str | None:
    """``debian:bookworm`` or ``debian:12-slim`` → ``bookworm``; None for anything else."""
    match = re.fullmatch(r"(?:docker\.io/)?(?:library/)?debian:([\w.]+?)(?:-slim)?", ref)
    return DEBIAN_SUITES.get(match.group(1)) if match else None


def apt_mirror() -> str:
    """The Debian mirror this machine's apt uses (so offline sites keep working)."""
    if env := os.environ.get("NEURODESK_APT_MIRROR"):
        return env
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for source in sources:
        try:
            text = source.read_text()
        except OSError:
            continue
        for url in re.findall(r"(?:^URIs:\s*|^deb\s+(?:\[[^]]*\]\s*)?)(\S+)", text, re.M):
            if "debian" in url and "security" not in url:
                return str(url)
    return DEFAULT_MIRROR


def debootstrap_tarball(suite: str, paths: Paths, log: Path, say: Say) -> Path:
    """A minimal root filesystem of ``suite`` as a tarball, cached under NEURODESK_HOME."""
    tarball = paths.cache / "base" / f"debian-{suite}.tar"
    if tarball.is_file():
        return tarball
    debootstrap = require("debootstrap", "create a Debian base image")
    if os.geteuid() != 0:
        raise NeurodeskError(
            "creating a base image with debootstrap needs root",
            hint="run 'sudo neurodesk base debian:" + suite + "' once, or pull the base image",
        )
    work = paths.cache / "base" / f".debian-{suite}.work"
    shutil.rmtree(work, ignore_errors=True)
    debs = paths.cache / "debootstrap-debs"
    debs.mkdir(parents=True, exist_ok=True)
    mirror = apt_mirror()
    say(f"debootstrap {suite} from {mirror} (about 30 s)")
    try:
        run_logged(
            [debootstrap, "--variant=minbase", f"--cache-dir={debs}", suite, str(work), mirror],
            log,
            what="debootstrap",
        )
        # Package lists are stale the moment they are written; images refresh them when needed.
        for leftover in (work / "var/lib/apt/lists").glob("*_*"):
            leftover.unlink()
        partial = tarball.with_suffix(".tar.part")
        subprocess.run(
            ["tar", "-C", str(work), "--numeric-owner", "-cf", str(partial), "."], check=True
        )
        partial.replace(tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tarball


def ensure_base(builder: Builder, ref: str, paths: Paths, log: Path, say: Say) -> str:
    """Make sure ``ref`` exists in the builder's storage; returns how it was obtained."""
    if builder.has_image(ref):
        return "local"
    say(f"pulling {ref}")
    if os.environ.get("NEURODESK_OFFLINE") != "1" and builder.pull(ref, log):
        return "pulled"
    suite = debian_suite(ref)
    if suite is None:
        raise NeurodeskError(
            f"base image '{ref}' is not available locally and cannot be pulled",
            hint="make it available to the builder, or use --base-override debian:bookworm",
        )
    tarball = debootstrap_tarball(suite, paths, log, say)
    say(f"registering {ref} from {tarball.name}")
    builder.import_rootfs(tarball, ref, log)
    return "debootstrap"
