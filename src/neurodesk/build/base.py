"""Base images: use the local one, else pull it, else make it with debootstrap.

Debian suites come from the apt mirror this machine already uses (so it works where only the
distribution's package mirror is reachable). Ubuntu suites need an Ubuntu mirror; when none
answers we say so in one line and suggest building on Debian with ``--base-override``.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from neurodesk.build.builder import Builder
from neurodesk.build.process import run_logged
from neurodesk.errors import NeurodeskError
from neurodesk.paths import Paths
from neurodesk.recipe import slim
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
UBUNTU_SUITES = {
    "20.04": "focal",
    "focal": "focal",
    "22.04": "jammy",
    "jammy": "jammy",
    "24.04": "noble",
    "noble": "noble",
}
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_UBUNTU_MIRROR = "http://archive.ubuntu.com/ubuntu"
UBUNTU_KEYRING = Path("/usr/share/keyrings/ubuntu-archive-keyring.gpg")
# Bumped whenever slim_rootfs (or the policy of recipe.slim it applies) changes what a base holds.
SLIM_POLICY = 1
OVERRIDE_HINT = "build on Debian instead with --base-override debian:bookworm"

Say = Callable[[str], None]


class BaseImageError(NeurodeskError):
    """A base image can be neither found, pulled nor made here."""


@dataclass(frozen=True)
class Distro:
    """What debootstrap needs to make a base: distribution, suite and mirror."""

    family: str  # "debian" | "ubuntu"
    suite: str

    @property
    def tarball_name(self) -> str:
        """The cached tarball's name; it names the slimming too, so a cache made before it (or
        by another policy) is not taken for one made now."""
        return f"{self.family}-{self.suite}.slim{SLIM_POLICY}.tar"


def parse_base(ref: str) -> Distro | None:
    """``debian:bookworm``, ``debian:12-slim``, ``ubuntu:22.04`` → a Distro; None otherwise."""
    match = re.fullmatch(
        r"(?:docker\.io/)?(?:library/)?(debian|ubuntu):([\w.]+?)(?:-slim)?", ref.strip()
    )
    if not match:
        return None
    family, tag = match.groups()
    table = DEBIAN_SUITES if family == "debian" else UBUNTU_SUITES
    suite = table.get(tag)
    return Distro(family, suite) if suite else None


def debian_suite(ref: str) -> str | None:
    """``debian:bookworm`` or ``debian:12-slim`` → ``bookworm``; None for anything else."""
    distro = parse_base(ref)
    return distro.suite if distro and distro.family == "debian" else None


def _sources_urls() -> list[str]:
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    urls: list[str] = []
    for source in sources:
        try:
            text = source.read_text()
        except OSError:
            continue
        urls += re.findall(r"(?:^URIs:\s*|^deb\s+(?:\[[^]]*\]\s*)?)(\S+)", text, re.M)
    return urls


def apt_mirror() -> str:
    """The Debian mirror this machine's apt uses (so offline sites keep working)."""
    if env := os.environ.get("NEURODESK_APT_MIRROR"):
        return env
    for url in _sources_urls():
        if "debian" in url and "security" not in url:
            return str(url)
    return DEFAULT_MIRROR


def ubuntu_mirror() -> str:
    """``NEURODESK_UBUNTU_MIRROR``, else an Ubuntu mirror apt knows, else archive.ubuntu.com."""
    if env := os.environ.get("NEURODESK_UBUNTU_MIRROR"):
        return env
    for url in _sources_urls():
        if "ubuntu" in url and "security" not in url:
            return str(url)
    return DEFAULT_UBUNTU_MIRROR


def mirror_reachable(mirror: str, suite: str, timeout: float = 5.0) -> bool:
    """True when ``<mirror>/dists/<suite>/Release`` answers (file:// mirrors included)."""
    url = f"{mirror.rstrip('/')}/dists/{suite}/Release"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.read(1))
    except (urllib.error.URLError, OSError, ValueError):
        return False


def mirror_for(distro: Distro) -> str:
    if distro.family == "debian":
        return apt_mirror()
    mirror = ubuntu_mirror()
    if not mirror_reachable(mirror, distro.suite):
        raise BaseImageError(
            f"no Ubuntu mirror is reachable for '{distro.suite}' (tried {mirror})",
            hint=f"{OVERRIDE_HINT}, or set NEURODESK_UBUNTU_MIRROR",
        )
    return mirror


def debootstrap_argv(distro: Distro, target: Path, mirror: str, debs: Path) -> list[str]:
    argv = [
        require("debootstrap", "create a base image"),
        "--variant=minbase",
        f"--cache-dir={debs}",
    ]
    if distro.family == "ubuntu":
        if not UBUNTU_KEYRING.is_file():
            raise BaseImageError(
                "Ubuntu's archive keyring is not installed (needed to verify the packages)",
                hint="install it with: sudo apt-get install ubuntu-keyring",
            )
        argv.append(f"--keyring={UBUNTU_KEYRING}")
    return [*argv, distro.suite, str(target), mirror]


def slim_rootfs(root: Path) -> int:
    """Make a fresh debootstrap tree what every image should start from (``recipe.slim``):
    dpkg and apt told to leave out documentation, translations and caches from now on, and
    what debootstrap already wrote of them removed. Returns the bytes removed."""
    removed = 0

    def remove(path: Path) -> None:
        nonlocal removed
        st = path.lstat()
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path)
            return
        removed += st.st_size if stat.S_ISREG(st.st_mode) else 0
        path.unlink()

    for rule in slim.LEFTOVERS:  # package lists are stale the moment they are written
        for leftover in root.glob(rule):
            remove(leftover)
    for top in sorted({PurePosixPath(p).parent for p in slim.EXCLUDE}):
        start = root / str(top).lstrip("/")
        for dirpath, dirs, files in os.walk(start):
            # os.walk lists a symbolic link to a directory among the directories (not followed)
            links = [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]
            for name in [*files, *links]:
                path = Path(dirpath, name)
                if slim.excluded("/" + path.relative_to(root).as_posix()):
                    remove(path)
    for relative, text in (
        (slim.DPKG_EXCLUDES_PATH, slim.DPKG_EXCLUDES),
        (slim.APT_CONFIG_PATH, slim.APT_CONFIG),
    ):
        target = root / relative.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return removed


def debootstrap_tarball(
    distro: Distro, paths: Paths, log: Path, say: Say, mirror: str | None = None
) -> Path:
    """A minimal root filesystem of ``distro`` as a tarball, cached under NEURODESK_HOME."""
    tarball = paths.cache / "base" / distro.tarball_name
    if tarball.is_file():
        return tarball
    mirror = mirror or mirror_for(distro)
    if os.geteuid() != 0:
        raise BaseImageError(
            "creating a base image with debootstrap needs root",
            hint=f"run 'sudo neurodesk base {distro.family}:{distro.suite}' once, or pull it",
        )
    work = paths.cache / "base" / f".{distro.family}-{distro.suite}.work"
    shutil.rmtree(work, ignore_errors=True)
    debs = paths.cache / "debootstrap-debs" / distro.family
    debs.mkdir(parents=True, exist_ok=True)
    argv = debootstrap_argv(distro, work, mirror, debs)
    say(f"debootstrap {distro.family} {distro.suite} from {mirror} (about 30 s)")
    partial = tarball.with_suffix(".tar.part")
    try:
        run_logged(argv, log, what="debootstrap")
        slim_rootfs(work)
        subprocess.run(
            ["tar", "-C", str(work), "--numeric-owner", "-cf", str(partial), "."], check=True
        )
        partial.replace(tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        partial.unlink(missing_ok=True)
    return tarball


def create_base(
    builder: Builder,
    ref: str,
    paths: Paths,
    log: Path,
    say: Say,
    *,
    distro: Distro | None = None,
    mirror: str | None = None,
) -> Path:
    """Make ``ref`` with debootstrap and register it in the builder's storage (``neurodesk
    base``); ``distro`` says what to bootstrap when the name does not (``mybase:1``)."""
    distro = distro or parse_base(ref)
    if distro is None:
        raise BaseImageError(
            f"cannot tell which distribution '{ref}' is",
            hint="name it debian:<suite> or ubuntu:<version>, or pass --suite",
        )
    tarball = debootstrap_tarball(distro, paths, log, say, mirror)
    say(f"registering {ref} from {tarball.name}")
    builder.import_rootfs(tarball, ref, log)
    return tarball


def ensure_base(builder: Builder, ref: str, paths: Paths, log: Path, say: Say) -> str:
    """Make sure ``ref`` exists in the builder's storage; returns how it was obtained."""
    if builder.has_image(ref):
        return "local"
    if os.environ.get("NEURODESK_OFFLINE") != "1":
        say(f"pulling {ref}")
        if builder.pull(ref, log):
            return "pulled"
    distro = parse_base(ref)
    if distro is None:
        raise BaseImageError(
            f"base image '{ref}' is not available locally and cannot be pulled",
            hint=f"make it available to the builder, or {OVERRIDE_HINT}",
        )
    if distro.family == "ubuntu" and not (paths.cache / "base" / distro.tarball_name).is_file():
        mirror = ubuntu_mirror()
        if not mirror_reachable(mirror, distro.suite):
            raise BaseImageError(
                f"base image '{ref}' cannot be pulled and no Ubuntu mirror is reachable "
                f"(tried {mirror})",
                hint=f"{OVERRIDE_HINT}, or set NEURODESK_UBUNTU_MIRROR",
            )
    create_base(builder, ref, paths, log, say, distro=distro)
    return "debootstrap"
