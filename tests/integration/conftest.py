"""Integration fixtures: real tools, a home with real images built once per session.

Tests here need root and system programs. Outside CI a missing program skips the test with the
reason; in CI (CI=true) it fails, so nothing is skipped silently.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from neurodesk.build.base import Distro
from neurodesk.build.build import build_recipe
from neurodesk.paths import Paths
from neurodesk.recipe import find_recipe
from neurodesk.store import ImageRecord
from tests.integration.slurm import slurm_cluster  # noqa: F401

pytestmark = pytest.mark.integration

# The debootstrap tarball is kept between local runs (30 s saved each time); CI starts clean.
BASE_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "neurodesk-tests"
# Its name changes with the slimming policy, so a stale cache is not used.
BASE_TARBALL = Distro("debian", "bookworm").tarball_name


def need(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    reasons = [f"missing programs: {', '.join(missing)}"] if missing else []
    if os.geteuid() != 0:
        reasons.append("needs root")
    if reasons:
        message = "; ".join(reasons)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def nd_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A NEURODESK_HOME shared by the integration tests of one session."""
    need("buildah", "bwrap", "debootstrap")
    home = tmp_path_factory.mktemp("ndhome")
    cached = BASE_CACHE / BASE_TARBALL
    base = home / "cache" / "base" / BASE_TARBALL
    if cached.is_file():
        base.parent.mkdir(parents=True)
        shutil.copyfile(cached, base)
    old = os.environ.get("NEURODESK_HOME")
    os.environ["NEURODESK_HOME"] = str(home)
    yield home
    if base.is_file() and not cached.is_file():
        BASE_CACHE.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(base, cached)
    if old is None:
        os.environ.pop("NEURODESK_HOME", None)
    else:
        os.environ["NEURODESK_HOME"] = old


@pytest.fixture(scope="session")
def dcm2niix_image(nd_home: Path) -> ImageRecord:
    """The dcm2niix image of recipes/dcm2niix, built into ``nd_home``."""
    return build_recipe(find_recipe("dcm2niix"), Paths(nd_home)).record


@pytest.fixture(scope="session")
def dcm2niix_sif(dcm2niix_image: ImageRecord, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SIF of the dcm2niix image padded with 48 MB that no command reads (sha256 beside it)."""
    import hashlib

    from tests.integration.sif_helpers import padded_sif

    need("mksquashfs")
    dest = tmp_path_factory.mktemp("sif") / f"{dcm2niix_image.id}.sif"
    padded_sif(dcm2niix_image.rootfs, dest, dcm2niix_image.env, 48 << 20)
    digest = hashlib.sha256()
    with dest.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    dest.with_name(dest.name + ".sha256").write_text(digest.hexdigest() + "\n")
    return dest
