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


def whiteout(name: str) -> tuple[tarfile.TarInfo, bytes]:
    return file(name, b"")


def test_symlink_chain_across_layers_stays_inside(tmp_path: Path, root: Path) -> None:
    """a -> b (layer 1), b -> ../../.. (layer 2), then a file under a/ (layer 3)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    rel = str(outside).lstrip("/")
    layers = [
        make_layer(tmp_path / "1.tar", [link("a", "b")]),
        make_layer(tmp_path / "2.tar", [link("b", "../../..")]),
        make_layer(tmp_path / "3.tar", [file(f"a/{rel}/pwned")]),
    ]
    unpack_layers(layers, root)
    assert not (outside / "pwned").exists()
    assert (root / rel / "pwned").exists()


@pytest.mark.parametrize("name", ["etc/.wh...", "../.wh.victim", "etc/../../.wh.victim"])
def test_whiteout_reaching_outside_is_refused(tmp_path: Path, root: Path, name: str) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    lower = make_layer(tmp_path / "1.tar", [directory("etc"), file("etc/f")])
    upper = make_layer(tmp_path / "2.tar", [whiteout(name)])
    with pytest.raises(UnsafeLayerError):
        unpack_layers([lower, upper], root)
    assert victim.read_text() == "keep"
    assert tmp_path.is_dir() and root.is_dir()


@pytest.mark.parametrize("name", [".wh..", "./.wh..", "etc/.wh.."])
def test_whiteout_of_the_root_or_of_dot_is_refused(tmp_path: Path, root: Path, name: str) -> None:
    lower = make_layer(tmp_path / "1.tar", [directory("etc"), file("etc/f")])
    upper = make_layer(tmp_path / "2.tar", [whiteout(name)])
    with pytest.raises(UnsafeLayerError):
        unpack_layers([lower, upper], root)
    assert (root / "etc" / "f").exists()


def test_symlink_pointing_at_a_whiteout_target_outside_removes_only_the_link(
    tmp_path: Path, root: Path
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    lower = make_layer(tmp_path / "1.tar", [link("v", str(victim))])
    upper = make_layer(tmp_path / "2.tar", [whiteout(".wh.v")])
    unpack_layers([lower, upper], root)
    assert victim.read_text() == "keep"
    assert not (root / "v").is_symlink()


@pytest.mark.parametrize("target", ["OUTSIDE", "../../OUTSIDE_REL"])
def test_opaque_marker_under_symlinked_dir_stays_inside(
    tmp_path: Path, root: Path, target: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep")
    link_target = str(outside) if target == "OUTSIDE" else "../../" + str(outside).lstrip("/")
    lower = make_layer(tmp_path / "1.tar", [link("d", link_target)])
    upper = make_layer(tmp_path / "2.tar", [whiteout("d/.wh..wh..opq"), file("d/new")])
    unpack_layers([lower, upper], root)
    assert (outside / "precious").read_text() == "keep"
    assert not (outside / "new").exists()


def test_long_symlink_chain_is_refused(tmp_path: Path, root: Path) -> None:
    chain = [link(f"l{i}", f"l{i + 1}") for i in range(100)] + [link("l100", "/")]
    layer = make_layer(tmp_path / "l.tar", [*chain, file("l0/x")])
    with pytest.raises(UnsafeLayerError, match="symlink"):
        unpack_layers([layer], root)


def test_symlink_loop_is_refused(tmp_path: Path, root: Path) -> None:
    layer = make_layer(tmp_path / "l.tar", [link("a", "b"), link("b", "a"), file("a/x")])
    with pytest.raises(UnsafeLayerError, match="symlink"):
        unpack_layers([layer], root)


def test_directory_mode_is_not_applied_through_a_later_symlinked_parent(
    tmp_path: Path, root: Path
) -> None:
    """Layer 1 makes x/outside (mode 0700); layer 2 turns x into a link to the host dir above."""
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o755)
    os.chmod(outside, 0o755)
    lower = make_layer(tmp_path / "1.tar", [directory("x"), directory("x/outside", 0o700)])
    upper = make_layer(tmp_path / "2.tar", [link("x", str(tmp_path))])
    unpack_layers([lower, upper], root)
    assert stat.S_IMODE(outside.stat().st_mode) == 0o755


@pytest.mark.parametrize("target", ["dir", "fifo"])
def test_hard_link_to_a_non_regular_file_is_refused(
    tmp_path: Path, root: Path, target: str
) -> None:
    fifo = tarfile.TarInfo("fifo")
    fifo.type = tarfile.FIFOTYPE
    layer = make_layer(tmp_path / "l.tar", [directory("dir"), fifo, link("hl", target, hard=True)])
    with pytest.raises(UnsafeLayerError):
        unpack_layers([layer], root)


def test_setuid_bit_stripped_on_hard_linked_copy(tmp_path: Path, root: Path) -> None:
    layer = make_layer(
        tmp_path / "l.tar", [file("bin/su", b"x", 0o4755), link("bin/su2", "bin/su", hard=True)]
    )
    unpack_layers([layer], root)
    for name in ("su", "su2"):
        assert (root / "bin" / name).stat().st_mode & (stat.S_ISUID | stat.S_ISGID) == 0
