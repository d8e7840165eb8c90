"""A squashfs bomb (issue 17): a few kilobytes of squashfs holding a 256 MiB file is refused
with one line before anything is unpacked, through ``neurodesk import``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import assert_one_line_error, run_cli
from tests.integration.conftest import need

pytestmark = pytest.mark.integration


def test_a_tiny_squashfs_declaring_a_gigabyte_is_refused(tmp_path: Path, home: Path) -> None:
    need("mksquashfs", "unsquashfs")
    src = tmp_path / "src"
    (src / "usr" / "bin").mkdir(parents=True)
    (src / "usr" / "bin" / "tool").write_text("#!/bin/sh\n")
    with (src / "big.img").open("wb") as handle:
        handle.truncate(256 << 20)
    image = tmp_path / "bomb.sqfs"
    subprocess.run(["mksquashfs", str(src), str(image), "-quiet", "-noappend"], check=True)
    assert image.stat().st_size < 64 * 1024
    proc = run_cli(["import", str(image), "--name", "bomb", "--version", "1"], home)
    assert_one_line_error(proc, "decompression bomb", "big.img")
    store = home / "store"
    assert not (store / "images").exists() or not any((store / "images").iterdir())
    assert not (store / "tmp").exists() or not any((store / "tmp").iterdir())
    trusted = run_cli(
        ["import", str(image), "--name", "bomb", "--version", "1"],
        home,
        env={"NEURODESK_MAX_UNPACK_RATIO": "1000000"},
    )
    assert trusted.returncode == 0, trusted.stderr
