"""A built image is slim (issue 16): no package lists, caches, logs, documentation, manuals or
translations; licences and dpkg's database stay, so the SBOM still lists every package."""

from __future__ import annotations

import os
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

from neurodesk.build.base import Distro
from neurodesk.recipe import slim
from neurodesk.repro.inside import ImageFiles
from neurodesk.repro.packages import inventory
from neurodesk.store import ImageRecord

pytestmark = pytest.mark.integration


def files_of(root: Path) -> list[str]:
    return [
        os.path.relpath(os.path.join(d, f), root)
        for d, _dirs, names in os.walk(root)
        for f in names
    ]


def test_the_dcm2niix_image_carries_nothing_the_slim_policy_leaves_out(
    dcm2niix_image: ImageRecord, nd_home: Path
) -> None:
    root = dcm2niix_image.rootfs
    paths = files_of(root)
    leftovers = [
        p
        for p in paths
        if slim.excluded("/" + p) or any(fnmatchcase(p, rule) for rule in slim.LEFTOVERS)
    ]
    assert leftovers == []
    # The base came from debootstrap here: its later installs are told the same rules.
    assert (nd_home / "cache" / "base" / Distro("debian", "bookworm").tarball_name).is_file()
    assert (root / slim.DPKG_EXCLUDES_PATH.lstrip("/")).read_text() == slim.DPKG_EXCLUDES
    assert (root / slim.APT_CONFIG_PATH.lstrip("/")).read_text() == slim.APT_CONFIG
    # Licences stay: of the base and of what the recipe installed.
    for package in ("dcm2niix", "pigz", "libc6", "bash"):
        assert (root / "usr/share/doc" / package / "copyright").is_file(), package
    # dpkg's database stays whole: the SBOM sees the installed packages with their versions.
    names = {p.name: p.version for p in inventory(ImageFiles(root)).packages}
    assert names.get("dcm2niix") and names.get("libc6") and names.get("python3-pydicom")
    # And the image is small: dcm2niix, pigz and Python (with pydicom) on a base of 74 MB weighed
    # 299 MB before the slimming and 135 MB after it.
    size = sum(
        (root / p).lstat().st_size
        for p in paths
        if (root / p).is_file() and not (root / p).is_symlink()
    )
    assert size < 160e6, f"{size / 1e6:.0f} MB"
