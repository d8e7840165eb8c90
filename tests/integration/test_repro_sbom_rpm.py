"""``neurodesk sbom`` reads a real rpm database (rpm >= 4.16, sqlite), as rpm itself wrote it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from neurodesk.paths import Paths
from neurodesk.store import Store
from tests.conftest import run_cli
from tests.integration.conftest import need

pytestmark = pytest.mark.integration

SPEC = """Name: tinyrpm
Version: 1.2.3
Release: 4
Summary: a package for the test
License: MIT
URL: https://example.org/tinyrpm
BuildArch: noarch
%description
a package for the test
%files
"""


def test_sbom_lists_the_packages_of_an_rpm_database(home: Path, tmp_path: Path) -> None:
    need("rpm", "rpmbuild")
    (tmp_path / "t.spec").write_text(SPEC)
    top = tmp_path / "top"
    subprocess.run(["rpmbuild", "-bb", "--define", f"_topdir {top}", str(tmp_path / "t.spec")],
                   check=True, capture_output=True)  # fmt: skip
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "os-release").write_text('ID=fedora\nVERSION_ID="40"\n')
    rpm = ["rpm", "--root", str(rootfs), "--dbpath", "/var/lib/rpm"]
    subprocess.run([*rpm, "--initdb"], check=True, capture_output=True)
    (package,) = (top / "RPMS" / "noarch").glob("*.rpm")
    subprocess.run([*rpm, "-i", "--justdb", "--nodeps", "--noscripts", str(package)],
                   check=True, capture_output=True)  # fmt: skip
    Store(Paths(home).store).register_sandbox(rootfs, "fedoraish", "1.0", "20260101")
    proc = run_cli(["info", "fedoraish", "--packages", "--json"], home)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["packages"] == [
        {
            "type": "rpm",
            "name": "tinyrpm",
            "version": "1.2.3-4",
            "purl": "pkg:rpm/fedora/tinyrpm@1.2.3-4?arch=noarch&distro=fedora-40",
        }
    ]
