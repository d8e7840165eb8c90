"""Every image input format, imported with `neurodesk import` and run as a real container."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import tarfile
from pathlib import Path

import pytest

from neurodesk.image.squashfs import SIF_DESCRIPTOR, SIF_HEADER, sif_root_partition
from neurodesk.store import ImageRecord
from tests.conftest import assert_one_line_error, run_cli
from tests.integration.conftest import need
from tests.unit.ocihelp import _blob

pytestmark = pytest.mark.integration

# Enough of the dcm2niix image (Debian 12, merged /usr) to run sh and cat.
MINI_FILES = [
    "usr/bin/dash",
    "usr/bin/cat",
    "usr/lib/x86_64-linux-gnu/libc.so.6",
    "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    "usr/lib64/ld-linux-x86-64.so.2",
    "etc/passwd",
    "etc/group",
]


@pytest.fixture(scope="module")
def mini(dcm2niix_image: ImageRecord, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (dcm2niix_image.rootfs / MINI_FILES[3]).exists():
        pytest.skip("the image is not an x86_64 Debian 12 one")
    root = tmp_path_factory.mktemp("mini") / "mini_1.0_20260102.simg"
    root.mkdir()
    for rel in MINI_FILES:
        subprocess.run(
            ["cp", "-a", "--parents", rel, str(root)], cwd=dcm2niix_image.rootfs, check=True
        )
    for name in ("bin", "lib", "lib64"):
        (root / name).symlink_to(f"usr/{name}")
    (root / "usr/bin/sh").symlink_to("dash")
    (root / "marker").write_text("mini image\n")
    env_dir = root / ".singularity.d/env"
    env_dir.mkdir(parents=True)
    (env_dir / "90-environment.sh").write_text('export GREETING="hello from mini"\n')
    return root


def oci_layout(root: Path, dest: Path) -> Path:
    """An OCI layout with ``root`` as its single layer (what skopeo then converts)."""
    layer = dest.parent / "layer.tar"
    with tarfile.open(layer, "w") as archive:
        for entry in sorted(os.listdir(root)):
            archive.add(root / entry, arcname=entry)
    (dest / "blobs/sha256").mkdir(parents=True)
    layer_desc = _blob(dest, layer.read_bytes())
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin", "GREETING=hello from mini"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]},
    }
    config_desc = _blob(dest, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_desc},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer_desc}],
    }
    manifest_desc = _blob(dest, json.dumps(manifest).encode())
    entry = {"mediaType": manifest["mediaType"], **manifest_desc}
    (dest / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    (dest / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return dest


def make_sif(squashfs: Path, dest: Path) -> Path:
    """A minimal SIF: header, a 4-entry descriptor table, labels and the squashfs partition."""
    labels = json.dumps({"org.label-schema.name": "mini"}).encode()
    descroff, total = 4096, 4
    labels_off = descroff + total * SIF_DESCRIPTOR.size
    part_off = (labels_off + len(labels) + 4095) // 4096 * 4096
    part = squashfs.read_bytes()
    header = SIF_HEADER.pack(
        b"#!/usr/bin/env run-singularity\n", b"SIF_MAGIC\0", b"01\0", b"02\0", bytes(16),
        0, 0, total - 2, total, descroff, 2 * SIF_DESCRIPTOR.size, labels_off,
        part_off + len(part) - labels_off,
    )  # fmt: skip

    def descriptor(datatype: int, ident: int, offset: int, length: int, extra: bytes) -> bytes:
        return SIF_DESCRIPTOR.pack(
            datatype, True, ident, 0xF0000001, 0, offset, length, length, 0, 0, 0, 0,
            b"", extra.ljust(384, b"\0"),
        )  # fmt: skip

    table = descriptor(0x4003, 1, labels_off, len(labels), b"")
    table += descriptor(0x4004, 2, part_off, len(part), struct.pack("<ii3s", 1, 2, b"02\0"))
    table += bytes(SIF_DESCRIPTOR.size * 2)  # two unused descriptors
    data = bytearray(part_off + len(part))
    data[: len(header)] = header
    data[descroff : descroff + len(table)] = table
    data[labels_off : labels_off + len(labels)] = labels
    data[part_off:] = part
    dest.write_bytes(bytes(data))
    return dest


@pytest.fixture(scope="module")
def inputs(mini: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    need("mksquashfs", "unsquashfs", "skopeo")
    work = tmp_path_factory.mktemp("inputs")
    layout = oci_layout(mini, work / "layout")
    sqfs = work / "mini.sqfs"
    subprocess.run(
        ["mksquashfs", str(mini), str(sqfs), "-noappend", "-quiet", "-no-progress"], check=True
    )
    docker = work / "mini-docker.tar"
    oci_archive = work / "mini-oci.tar"
    for dest in (f"docker-archive:{docker}:mini_1.0:20260102", f"oci-archive:{oci_archive}"):
        subprocess.run(
            ["skopeo", "copy", "-q", f"oci:{layout}", dest], check=True, capture_output=True
        )
    return {
        "oci-layout": layout,
        "oci-archive": oci_archive,
        "docker-archive": docker,
        "squashfs": sqfs,
        "sif": make_sif(sqfs, work / "mini.sif"),
        "sandbox": mini,
    }


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("importhome")


def test_sif_descriptor_table_is_parsed(inputs: dict[str, Path]) -> None:
    partition = sif_root_partition(inputs["sif"])
    assert partition.offset % 4096 == 0
    assert partition.length == inputs["squashfs"].stat().st_size


@pytest.mark.parametrize(
    "kind", ["oci-layout", "oci-archive", "docker-archive", "squashfs", "sif", "sandbox"]
)
def test_import_and_run(inputs: dict[str, Path], home: Path, kind: str, mini: Path) -> None:
    version = kind.replace("-", "")
    proc = run_cli(["import", str(inputs[kind]), "--name", "mini", "--version", version], home)
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(run_cli(["images", "--json"], home).stdout)
    record = next(r for r in listed if r["version"] == version)
    if kind in ("docker-archive", "sandbox"):  # dated by the tag, by the directory name
        assert record["builddate"] == "20260102"
    if kind == "sandbox":
        assert record["rootfs"] == str(mini)  # used in place, never copied
    else:
        assert record["rootfs"].startswith(str(home / "store" / "images"))
    script = 'cat /marker; echo "$GREETING"'
    proc = run_cli(["exec", f"mini/{version}", "--", "sh", "-c", script], home, cwd=Path("/"))
    assert proc.stdout == "mini image\nhello from mini\n", proc.stderr


def test_du_reports_shared_files_once_then_rm_and_gc(inputs: dict[str, Path], home: Path) -> None:
    for kind in ("oci-layout", "docker-archive"):
        run_cli(["import", str(inputs[kind]), "--name", "mini", "--version", kind], home)
    report = json.loads(run_cli(["du", "--json"], home).stdout)
    # the OCI and docker-archive images and the squashfs/SIF one hold the same files, once
    assert report["dedup_ratio"] > 1.5, report
    assert any(i["size"] is None for i in report["images"])  # the sandbox: not ours to count
    table = run_cli(["du"], home).stdout
    assert "deduplication ratio" in table
    for version in ("ocilayout", "ociarchive", "dockerarchive", "squashfs", "sif", "sandbox"):
        proc = run_cli(["rm", f"mini/{version}"], home)
        assert proc.returncode == 0, proc.stderr
    for kind in ("oci-layout", "docker-archive"):
        assert run_cli(["rm", f"mini/{kind}"], home).returncode == 0
    proc = run_cli(["gc", "--json"], home)
    gc_report = json.loads(proc.stdout)
    assert gc_report["blobs"] > 0 and gc_report["files"] > 0
    store = home / "store"
    assert not any((store / "images").iterdir())
    assert not any((store / "files").glob("*/*"))
    assert (inputs["sandbox"] / "marker").exists()
    assert run_cli(["images", "--json"], home).stdout.strip() == "[]"


def test_bad_inputs_are_one_line_errors(home: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not an image at all" * 10)
    assert_one_line_error(run_cli(["import", str(junk), "--name", "x", "--version", "1"], home),
                          "unknown image format")  # fmt: skip
    assert_one_line_error(run_cli(["import", str(tmp_path / "missing")], home), "does not exist")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(run_cli(["import", str(empty)], home), "neither an OCI layout")
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as archive:
        for name in ("oci-layout", "index.json", "../escape"):
            info = tarfile.TarInfo(name)
            archive.addfile(info)
    proc = run_cli(["import", str(evil), "--name", "x", "--version", "1"], home)
    assert_one_line_error(proc, "outside the archive")
    assert not (tmp_path / "escape").exists()
