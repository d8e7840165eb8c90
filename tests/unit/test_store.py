"""The store: verified blobs, dedupe by hard links, rm/gc/du, sandboxes used in place."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from neurodesk.errors import NotFoundError
from neurodesk.image.oci import ImageFormatError, OCILayout
from neurodesk.store import Store
from neurodesk.store.imports import guess_identity, import_path
from neurodesk.store.maintenance import du, gc
from tests.unit.ocihelp import write_layout


def check_consistent(store: Store) -> None:
    """Every blob matches its name, every ref has a complete image, pool names match content."""
    blobs = store.root / "blobs" / "sha256"
    for blob in blobs.iterdir() if blobs.is_dir() else []:
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name, blob
    for record in store.images():
        if record.external_rootfs is None:
            assert (record.image_dir / "image.json").is_file(), record.id
            assert record.rootfs.is_dir(), record.id
    files = store.files_dir
    for shared in files.glob("*/*") if files.is_dir() else []:
        assert hashlib.sha256(shared.read_bytes()).hexdigest() == shared.name.split("-")[0]


def test_import_then_resolve(tmp_path: Path) -> None:
    layout = write_layout(tmp_path / "l", [{"bin/tool.sh": b"#!/bin/sh\n"}], env=["A=1"])
    store = Store(tmp_path / "store")
    record = store.import_layout(OCILayout(layout), "tool", "1.0", "20260101")
    assert store.resolve("tool").id == "tool_1.0_20260101"
    assert (record.rootfs / "bin/tool.sh").read_bytes() == b"#!/bin/sh\n"
    assert record.env == {"A": "1"}
    # the manifest blob is kept too (needed to push the image again with the same digest)
    assert store.blob_path(record.digest).is_file()
    check_consistent(store)


def test_corrupt_blob_is_refused_and_nothing_is_published(tmp_path: Path) -> None:
    layout = write_layout(tmp_path / "l", [{"f": b"good"}])
    layer = next(p for p in (layout / "blobs/sha256").iterdir() if p.stat().st_size > 1000)
    data = bytearray(layer.read_bytes())
    data[600] ^= 0xFF  # flip one byte of the file content inside the tar
    layer.write_bytes(bytes(data))
    store = Store(tmp_path / "store")
    with pytest.raises(ImageFormatError, match="corrupt"):
        store.import_layout(OCILayout(layout), "tool", "1.0", "20260101")
    assert store.images() == []
    assert not (store.root / "blobs/sha256" / layer.name).exists()
    assert list((store.root / "tmp").iterdir()) == []


def test_identical_files_are_stored_once_and_du_reports_the_ratio(tmp_path: Path) -> None:
    big = os.urandom(50_000)
    store = Store(tmp_path / "store")
    for version in ("1", "2", "3"):
        files = {"opt/big.bin": big, "opt/version": version.encode()}
        layout = write_layout(tmp_path / version, [files])
        store.import_layout(OCILayout(layout), "tool", version, "20260101")
    inodes = {(r.rootfs / "opt/big.bin").stat().st_ino for r in store.images()}
    assert len(inodes) == 1
    report = du(store)
    assert report.logical == 3 * (50_000 + 1)
    assert report.physical == 50_000 + 3
    assert report.ratio == pytest.approx(report.logical / report.physical)
    assert [u.exclusive for u in report.images] == [1, 1, 1]
    assert report.to_json()["dedup_ratio"] > 2.9


def test_files_differing_in_mode_or_mtime_are_not_merged(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    a = write_layout(tmp_path / "a", [{"x.sh": b"same", "y": b"same"}])
    record = store.import_layout(OCILayout(a), "t", "1", "20260101")
    assert (record.rootfs / "x.sh").stat().st_ino != (record.rootfs / "y").stat().st_ino


def test_rm_then_gc_frees_everything_only_that_image_used(tmp_path: Path) -> None:
    shared = os.urandom(10_000)
    store = Store(tmp_path / "store")
    for version in ("1", "2"):
        files = {"shared": shared, "own": os.urandom(5_000)}
        store.import_layout(OCILayout(write_layout(tmp_path / version, [files])), "t", version, "d")
    (store.root / "tmp" / "nd-leftover").mkdir(parents=True)
    one = store.resolve("t/1")
    removed = store.remove("t/1")
    assert [r.id for r in removed] == ["t_1_d"]
    assert not one.image_dir.exists()
    report = gc(store)
    assert report.tmp == 1 and report.blobs == 3 and report.files == 1
    two = store.resolve("t")
    assert (two.rootfs / "shared").read_bytes() == shared
    check_consistent(store)
    assert gc(store).bytes_freed == 0  # nothing left to collect


def test_rm_unknown_image_says_what_exists(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    store.import_layout(OCILayout(write_layout(tmp_path / "l", [{"f": b"x"}])), "t", "1", "d")
    with pytest.raises(NotFoundError, match="t/1"):
        store.remove("t/9")


def test_sandbox_is_used_in_place_with_its_apptainer_metadata(tmp_path: Path) -> None:
    sandbox = tmp_path / "cvmfs" / "tool_2.1_20250101.simg"
    (sandbox / "bin").mkdir(parents=True)
    env_dir = sandbox / ".singularity.d" / "env"
    env_dir.mkdir(parents=True)
    (env_dir / "90-environment.sh").write_text(
        '#!/bin/sh\nexport DEPLOY_PATH="/opt/tool/bin"\nexport FOO=${FOO:-"bar baz"}\n'
        "export COMPUTED=$(uname)\n"
    )
    (sandbox / ".singularity.d" / "labels.json").write_text('{"maintainer": "x"}')
    store = Store(tmp_path / "store")
    record = import_path(store, sandbox)
    assert (record.name, record.version, record.builddate) == ("tool", "2.1", "20250101")
    assert record.rootfs == sandbox and record.source == "sandbox"
    assert record.env == {"DEPLOY_PATH": "/opt/tool/bin", "FOO": "bar baz"}
    assert record.labels == {"maintainer": "x"}
    assert store.resolve("tool").rootfs == sandbox
    assert not (store.root / "images").exists()  # nothing copied
    store.remove("tool")
    gc(store)
    assert (sandbox / "bin").is_dir()  # forgetting a sandbox never deletes it


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dcm2niix_1.0.20220720:20261121", ("dcm2niix", "1.0.20220720", "20261121")),
        ("fsl_6.0.7.4_20231128.simg", ("fsl", "6.0.7.4", "20231128")),
        ("registry/x/mrtrix3_3.0.4:20240101", ("mrtrix3", "3.0.4", "20240101")),
        ("no-date-here", (None, None, None)),
    ],
)
def test_guess_identity(text: str, expected: tuple[str | None, ...]) -> None:
    ident = guess_identity(text)
    assert (ident.name, ident.version, ident.builddate) == expected


def test_names_that_would_escape_refs_are_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    layout = OCILayout(write_layout(tmp_path / "l", [{"f": b"x"}]))
    for name, version in (("../x", "1"), ("t", "../../etc"), (".hidden", "1")):
        with pytest.raises(ImageFormatError):
            store.import_layout(layout, name, version, "20260101")
