"""Layer extraction: OCI whiteouts, and crafted malicious layers that must not escape the root."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from neurodesk.image.layers import UnsafeLayerError, unpack_layers


def make_layer(path: Path, entries: list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w") as archive:
        for entry in entries:
            if isinstance(entry, tuple):
                info, data = entry
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            else:
                archive.addfile(entry)
    return path


def file(name: str, data: bytes = b"x", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, data


def directory(name: str, mode: int = 0o755) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    return info


def link(name: str, target: str, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "rootfs"
    path.mkdir()
    return path


def test_files_dirs_and_symlinks_are_extracted(tmp_path: Path, root: Path) -> None:
    layer = make_layer(
        tmp_path / "l.tar",
        [directory("usr"), directory("usr/bin"), file("usr/bin/tool", b"#!/bin/sh\n", 0o755),
         link("bin", "usr/bin"), link("usr/bin/alias", "/usr/bin/tool")],
    )  # fmt: skip
    unpack_layers([layer], root)
    assert (root / "usr/bin/tool").read_bytes() == b"#!/bin/sh\n"
    assert os.access(root / "usr/bin/tool", os.X_OK)
    assert os.readlink(root / "bin") == "usr/bin"
    assert os.readlink(root / "usr/bin/alias") == "/usr/bin/tool"


def test_whiteout_removes_lower_file_and_opaque_hides_lower_dir(tmp_path: Path, root: Path) -> None:
    lower = make_layer(
        tmp_path / "1.tar",
        [directory("etc"), file("etc/a"), file("etc/b"), directory("opt"), file("opt/old")],
    )
    upper = make_layer(
        tmp_path / "2.tar",
        [file("etc/.wh.a", b""), directory("opt"), file("opt/.wh..wh..opq", b""), file("opt/new")],
    )
    unpack_layers([lower, upper], root)
    assert not (root / "etc/a").exists()
    assert (root / "etc/b").exists()
    assert sorted(p.name for p in (root / "opt").iterdir()) == ["new"]


@pytest.mark.parametrize("name", ["../escape", "a/../../escape", "/../escape"])
def test_path_traversal_is_refused(tmp_path: Path, root: Path, name: str) -> None:
    layer = make_layer(tmp_path / "l.tar", [file(name)])
    with pytest.raises(UnsafeLayerError):
        unpack_layers([layer], root)
    assert not (tmp_path / "escape").exists()


@pytest.mark.parametrize("target", ["/", "..", "../..", "/tmp/../.."])
def test_symlink_planted_then_written_through_stays_inside(
    tmp_path: Path, root: Path, target: str
) -> None:
    """A symlink to outside followed by a file 'under' it lands inside the root."""
    outside = tmp_path / "outside"
    outside.mkdir()
    layer = make_layer(
        tmp_path / "l.tar",
        [link("evil", target), file("evil/" + str(outside).lstrip("/") + "/pwned")],
    )
    unpack_layers([layer], root)
    assert not (outside / "pwned").exists()
    assert (root / str(outside).lstrip("/") / "pwned").exists()


def test_absolute_symlink_to_host_file_is_not_followed_on_overwrite(
    tmp_path: Path, root: Path
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("original")
    lower = make_layer(tmp_path / "1.tar", [link("f", str(victim))])
    upper = make_layer(tmp_path / "2.tar", [file("f", b"overwritten")])
    unpack_layers([lower, upper], root)
    assert victim.read_text() == "original"
    assert (root / "f").read_bytes() == b"overwritten"


def test_hard_link_to_outside_file_is_refused(tmp_path: Path, root: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("secret")
    layer = make_layer(tmp_path / "l.tar", [link("hl", "../victim", hard=True)])
    with pytest.raises(UnsafeLayerError):
        unpack_layers([layer], root)


def test_hard_link_through_symlink_to_host_is_refused(tmp_path: Path, root: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("secret")
    layer = make_layer(tmp_path / "l.tar", [link("s", str(victim)), link("hl", "s", hard=True)])
    with pytest.raises(UnsafeLayerError):
        unpack_layers([layer], root)
    assert victim.stat().st_nlink == 1


def test_device_nodes_are_skipped(tmp_path: Path, root: Path) -> None:
    dev = tarfile.TarInfo("dev/sda")
    dev.type = tarfile.BLKTYPE
    dev.devmajor, dev.devminor = 8, 0
    layer = make_layer(tmp_path / "l.tar", [directory("dev"), dev])
    unpack_layers([layer], root)
    assert not (root / "dev/sda").exists()


def test_setuid_and_setgid_bits_are_stripped(tmp_path: Path, root: Path) -> None:
    layer = make_layer(tmp_path / "l.tar", [file("su", b"x", 0o6755)])
    unpack_layers([layer], root)
    mode = stat.S_IMODE((root / "su").stat().st_mode)
    assert mode & (stat.S_ISUID | stat.S_ISGID) == 0
    assert mode & 0o755 == 0o755
