"""SIF files we write: read back by our reader, unsquashfs, squashfuse, and `neurodesk import`."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from neurodesk.errors import NeurodeskError
from neurodesk.image.sif_write import PARTITION_OFFSET, write_sif
from neurodesk.image.squashfs import (
    DATA_LABELS,
    DATA_PARTITION,
    SIF_HEADER,
    sif_labels,
    sif_objects,
    sif_root_partition,
)
from neurodesk.store import ImageRecord
from tests.conftest import run_cli
from tests.integration.conftest import need

pytestmark = pytest.mark.integration

ENV_SCRIPT = ".singularity.d/env/90-environment.sh"


@pytest.fixture
def tiny_rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "hello").write_text("hello\n")
    return root


def test_written_sif_is_read_by_our_reader_unsquashfs_and_squashfuse(
    tiny_rootfs: Path, tmp_path: Path
) -> None:
    need("mksquashfs", "unsquashfs", "squashfuse", "fusermount3")
    hostile = "it's $(touch /tmp/pwned) `x`"
    written = write_sif(
        tiny_rootfs, tmp_path / "t.sif", {"PATH": "/bin", "X": hostile}, {"org.example": "v"}
    )
    assert written.partition_offset == PARTITION_OFFSET == 32768
    header = SIF_HEADER.unpack(written.path.read_bytes()[: SIF_HEADER.size])
    assert header[0].startswith(b"#!/usr/bin/env run-singularity\n")
    assert header[1] == b"SIF_MAGIC\0" and header[2] == b"01\0"
    assert uuid.UUID(bytes=header[4]).version == 4
    objects = sif_objects(written.path)
    assert [o.datatype for o in objects] == [DATA_PARTITION, DATA_LABELS]
    part = sif_root_partition(written.path)
    assert (part.offset, part.length) == (32768, written.partition_size)
    assert sif_labels(written.path) == b'{"org.example": "v"}'
    # unsquashfs at the offset sees the rootfs and the generated Apptainer metadata
    env_script = subprocess.run(
        ["unsquashfs", "-o", str(part.offset), "-cat", str(written.path), ENV_SCRIPT],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    shell = subprocess.run(
        ["sh", "-c", env_script + 'printf %s "$X"'], capture_output=True, text=True, check=True
    )
    assert shell.stdout == hostile  # quoted, not run
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(
        ["squashfuse", "-o", f"offset={part.offset}", str(written.path), str(mnt)], check=True
    )
    try:
        assert (mnt / "bin" / "hello").read_text() == "hello\n"
        assert os.access(mnt / ".singularity.d" / "actions" / "exec", os.X_OK)
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], check=True)


def test_metadata_already_in_the_image_is_kept(tiny_rootfs: Path, tmp_path: Path) -> None:
    need("mksquashfs", "unsquashfs")
    env_dir = tiny_rootfs / ".singularity.d" / "env"
    env_dir.mkdir(parents=True)
    (env_dir / "90-environment.sh").write_text("export MINE=1\n")
    written = write_sif(tiny_rootfs, tmp_path / "t.sif", {"OTHER": "2"})
    text = subprocess.run(
        ["unsquashfs", "-o", "32768", "-cat", str(written.path), ENV_SCRIPT],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert text == "export MINE=1\n"


def test_a_failed_write_leaves_nothing(tiny_rootfs: Path, tmp_path: Path) -> None:
    need("mksquashfs")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(NeurodeskError, match="cannot add"):
        write_sif(tiny_rootfs, out / "t.sif", extra_files={"../escape": tiny_rootfs / "bin/hello"})
    assert list(out.iterdir()) == []


def test_export_then_import_runs_the_same_tool(
    dcm2niix_image: ImageRecord, nd_home: Path, tmp_path: Path
) -> None:
    need("mksquashfs", "unsquashfs", "bwrap")
    sif = tmp_path / "dcm2niix.sif"
    proc = run_cli(["export", "dcm2niix", "--sif", str(sif), "--json"], nd_home)
    assert proc.returncode == 0, proc.stderr
    assert '"partition_offset": 32768' in proc.stdout
    assert sif_root_partition(sif).offset == 32768
    other = tmp_path / "home2"
    other.mkdir()
    imported = run_cli(
        ["import", str(sif), "--name", "dcmsif", "--version", "1", "--builddate", "20260101"],
        other,
    )
    assert imported.returncode == 0, imported.stderr
    run = run_cli(["exec", "dcmsif", "--", "dcm2niix", "-v"], other, cwd=tmp_path)
    assert "dcm2niix" in (run.stdout + run.stderr).lower(), run.stderr
    # the image's environment came across (DEPLOY_PATH is what install reads)
    env = run_cli(["images", "--json"], other)
    assert dcm2niix_image.env.get("DEPLOY_BINS", "") in env.stdout
