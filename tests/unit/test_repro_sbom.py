"""``neurodesk sbom`` / ``info --packages``: packages read from an image, never through links
leading out of it; CycloneDX and SPDX documents that their own validators accept."""

from __future__ import annotations

import json
import sqlite3
import struct
from pathlib import Path

import pytest

from neurodesk.paths import Paths
from neurodesk.repro.inside import ImageFiles
from neurodesk.repro.packages import inventory
from neurodesk.store import Store
from tests.conftest import assert_one_line_error, run_cli

STATUS = """Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9+deb12u4
Description: GNU C Library
 continuation line: Package: not-a-package

Package: dcm2niix
Status: install ok installed
Architecture: amd64
Source: dcm2niix (1.0.20220720-1)
Version: 1.0.20220720-1
Homepage: https://github.com/rordenlab/dcm2niix

Package: removed-one
Status: deinstall ok config-files
Version: 1.0
"""


def fake_image(root: Path, outside: Path) -> Path:
    """A root filesystem with dpkg, pip, egg-info and conda metadata, and hostile links."""
    files = {
        "etc/os-release": 'ID=debian\nVERSION_ID="12"\n',
        "var/lib/dpkg/status": STATUS,
        "usr/lib/python3/dist-packages/numpy-1.24.2.dist-info/METADATA": (
            "Metadata-Version: 2.1\nName: numpy\nVersion: 1.24.2\nLicense: BSD-3-Clause\n"
        ),
        "usr/local/lib/python3.11/site-packages/Old_Pkg.egg-info/PKG-INFO": (
            "Metadata-Version: 1.0\nName: Old_Pkg\nVersion: 0.3\n"
        ),
        "opt/conda/conda-meta/zlib-1.2.13-h0.json": json.dumps(
            {
                "name": "zlib",
                "version": "1.2.13",
                "build": "h0",
                "channel": "conda-forge",
                "subdir": "linux-64",
                "license": "Zlib",
            }
        ),
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    rpmdb(root / "var/lib/rpm/rpmdb.sqlite", {1000: "tinyrpm", 1001: "1.2.3", 1002: "4",
                                              1022: "noarch", 1014: "MIT"})  # fmt: skip
    # Hostile: metadata that is a link to a host file, a site dir that is a link out of the image.
    outside.mkdir()
    (outside / "METADATA").write_text("Name: HOSTSECRET\nVersion: 6.6.6\n")
    site = root / "usr/local/lib/python3.11/site-packages"
    (site / "evil-1.dist-info").mkdir()
    (site / "evil-1.dist-info" / "METADATA").symlink_to(outside / "METADATA")
    (site / "escape-1.dist-info").symlink_to(outside)
    (site / "climb-1.dist-info").symlink_to("../../../../../../../../.." + str(outside))
    (root / "opt" / "hostconda").symlink_to(outside.parent)
    return root


def rpm_header(tags: dict[int, str]) -> bytes:
    """An rpm header as rpm >= 4.16 stores it in rpmdb.sqlite: counts, index, data."""
    index, data = b"", b""
    for tag, value in tags.items():
        index += struct.pack(">iiii", tag, 6, len(data), 1)  # 6: RPM_STRING_TYPE
        data += value.encode() + b"\0"
    return struct.pack(">ii", len(tags), len(data)) + index + data


def rpmdb(path: Path, tags: dict[int, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB)")
        db.execute("INSERT INTO Packages (blob) VALUES (?)", (rpm_header(tags),))
        db.execute("INSERT INTO Packages (blob) VALUES (?)", (b"\xff" * 7,))  # junk: ignored
    db.close()


@pytest.fixture
def image_home(home: Path, tmp_path: Path) -> Path:
    rootfs = fake_image(tmp_path / "rootfs", tmp_path / "host-secrets")
    Store(Paths(home).store).register_sandbox(rootfs, "fake", "1.0", "20260101")
    return home


def test_packages_of_every_kind_and_nothing_from_outside(tmp_path: Path) -> None:
    rootfs = fake_image(tmp_path / "rootfs", tmp_path / "host-secrets")
    found = inventory(ImageFiles(rootfs))
    purls = sorted(p.purl for p in found.packages)
    assert purls == [
        "pkg:conda/zlib@1.2.13?arch=linux-64&build=h0&channel=conda-forge",
        "pkg:deb/debian/dcm2niix@1.0.20220720-1?arch=amd64&distro=debian-12&upstream=dcm2niix",
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12",
        "pkg:pypi/numpy@1.24.2",
        "pkg:pypi/old-pkg@0.3",
        "pkg:rpm/debian/tinyrpm@1.2.3-4?arch=noarch&distro=debian-12",
    ]
    assert not any("HOSTSECRET" in p.name for p in found.packages)
    assert found.notes == []


def test_cyclonedx_document_is_valid(image_home: Path) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    proc = run_cli(["sbom", "fake"], image_home)
    assert proc.returncode == 0, proc.stderr
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(proc.stdout) is None
    bom = json.loads(proc.stdout)
    assert bom["metadata"]["component"]["type"] == "container"
    names = {c["name"] for c in bom["components"]}
    assert names == {"libc6", "dcm2niix", "numpy", "Old_Pkg", "zlib", "tinyrpm"}
    (root_deps,) = [d for d in bom["dependencies"] if d["ref"].startswith("pkg:oci/")]
    assert len(root_deps["dependsOn"]) == 6


def test_spdx_document_parses_and_validates(image_home: Path, tmp_path: Path) -> None:
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    out = tmp_path / "fake.spdx.json"
    proc = run_cli(["sbom", "fake", "--format", "spdx", "-o", str(out)], image_home)
    assert proc.returncode == 0, proc.stderr
    document = parse_file(str(out))
    assert validate_full_spdx_document(document) == []
    assert {p.name for p in document.packages} >= {"fake_1.0", "dcm2niix", "zlib"}


def test_info_packages_table_and_json(image_home: Path) -> None:
    proc = run_cli(["info", "fake", "--packages", "--json"], image_home)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["os"] == "debian 12"
    assert {"type": "deb", "name": "dcm2niix", "version": "1.0.20220720-1"}.items() <= (
        next(p for p in data["packages"] if p["name"] == "dcm2niix").items()
    )
    table = run_cli(["info", "fake", "--packages"], image_home)
    assert "fake_1.0_20260101: 6 package(s)" in table.stdout
    assert "tinyrpm" in table.stdout


def test_an_rpm_database_of_another_format_is_noted(tmp_path: Path) -> None:
    (tmp_path / "var/lib/rpm").mkdir(parents=True)
    (tmp_path / "var/lib/rpm/Packages").write_bytes(b"\0" * 64)  # BerkeleyDB: not read
    found = inventory(ImageFiles(tmp_path))
    assert found.packages == []
    assert found.notes == ["/var/lib/rpm/Packages: this rpm database format is not read"]


def test_sbom_errors_are_one_line(home: Path) -> None:
    assert_one_line_error(run_cli(["sbom", "nosuch"], home), "no image named 'nosuch'")
    assert_one_line_error(run_cli(["info", "nosuch", "--packages"], home), "nosuch")
    bad = run_cli(["sbom", "x", "--format", "xml"], home)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
