"""SIF pieces that need no root or FUSE: generated shell is quoted, URLs and digests parsed,
runtimes given the SIF file, the lazy decision made in one place."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from neurodesk.errors import NeurodeskError
from neurodesk.image.sif_write import environment_script
from neurodesk.sources.sif_source import _is_sif_url
from neurodesk.store.sifmount import SifMeta, lay_out, refresh_script, render_script, sif_file
from neurodesk.store.sifstore import remote_name
from tests.conftest import assert_one_line_error, run_cli

HOSTILE = "x'; touch /tmp/nd-pwned; echo '$(id)`id`"


def test_environment_script_quotes_hostile_values(tmp_path: Path) -> None:
    script = environment_script({"A": HOSTILE, "BAD NAME": "1", "PATH": "/usr/bin"})
    assert "BAD NAME" not in script
    out = subprocess.run(
        ["sh", "-c", script + 'printf %s "$A"'], capture_output=True, text=True, check=True
    )
    assert out.stdout == HOSTILE


def test_mount_script_header_quotes_values_and_parses(tmp_path: Path) -> None:
    meta = SifMeta(32768, 1000, "sha256:" + "0" * 64, f"http://h/{HOSTILE}.sif", HOSTILE)
    script = render_script(HOSTILE, meta)
    header = script.split("\nnd_dir=", 1)[0]
    out = subprocess.run(
        ["sh", "-c", header + '\nprintf "%s|%s|%s" "$nd_id" "$nd_offset" "$nd_remote"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == f"{HOSTILE}|32768|{HOSTILE}"
    assert subprocess.run(["sh", "-n", "-c", script], check=False).returncode == 0


def test_an_older_mount_script_is_rewritten_keeping_its_values(tmp_path: Path) -> None:
    meta = SifMeta(32768, 1000, "sha256:" + "0" * 64)
    lay_out(tmp_path / "img", "tool_1_20260101", meta, lazy=False, stall=7)
    script = tmp_path / "img" / "mount.sh"
    today = script.read_text()
    assert "nd_stall=7\n" in today and "nd_mounters='squashfuse_ll squashfuse'" in today
    script.write_text(today.split("\nnd_mounters=", 1)[0] + "\nsquashfuse -o offset=1 a b\n")
    refresh_script(tmp_path / "img")
    assert script.read_text() == today
    assert script.stat().st_mode & 0o111
    inode = script.stat().st_ino
    refresh_script(tmp_path / "img")  # a current script is left as it is
    assert script.stat().st_ino == inode


@pytest.mark.parametrize(
    ("url", "is_sif"),
    [
        ("https://s3.example.org/bucket/dcm2niix_1.0_20260101.sif", True),
        ("https://h/x.simg", True),
        (f"https://quay.example/v2/neurodesk/blobs/sha256:{'a' * 64}", True),
        ("https://mirror.example/tree", False),
    ],
)
def test_sif_urls_are_told_from_trees(url: str, is_sif: bool) -> None:
    assert _is_sif_url(url) is is_sif


def test_remote_name_is_the_url_basename() -> None:
    assert remote_name("http://h/a/b%20c.sif?x=1") == "b c.sif"
    with pytest.raises(NeurodeskError):
        remote_name("http://h/")


def test_sif_file_only_for_images_held_as_sifs(tmp_path: Path) -> None:
    image = tmp_path / "img"
    (image / "mnt" / "sif").mkdir(parents=True)
    (image / "image.sif").write_bytes(b"")
    (image / "rootfs").symlink_to("mnt/sif")
    assert sif_file(image / "rootfs") == image / "image.sif"
    plain = tmp_path / "plain" / "rootfs"
    plain.mkdir(parents=True)
    assert sif_file(plain) is None


def test_lazy_flags_without_a_usable_source_are_one_line_errors(home: Path) -> None:
    assert_one_line_error(run_cli(["install", "dcm2niix", "--lazy"], home), "HTTP(S) SIF source")
    assert_one_line_error(
        run_cli(["install", "dcm2niix", "--prefetch", "--from", "http://127.0.0.1:9/x.sif"], home),
        "--prefetch goes with --lazy",
    )


def test_export_needs_an_image(home: Path, tmp_path: Path) -> None:
    proc = run_cli(["export", "nosuch", "--sif", str(tmp_path / "x.sif")], home)
    assert_one_line_error(proc, "nosuch")
