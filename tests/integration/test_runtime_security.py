"""A container never holds privileges over the host, and source data stays read-only.

Run as root (as CI does): the program in the container has no capability (CapEff 0), cannot
remount the image, cannot write the image or the store even where they lie below a read-write
bind, whichever route starts it. A batch's inputs stay read-only wherever they lie ($HOME,
/tmp, /var/tmp), even for a command that tries to write next to them, and an output root inside
an input is refused.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from neurodesk.install.installer import install_image
from neurodesk.install.wrapper import render_wrapper
from neurodesk.store import ImageRecord
from tests.conftest import assert_one_line_error, run_cli
from tests.integration.conftest import need

pytestmark = pytest.mark.integration

ATTACK = (
    "grep CapEff /proc/self/status; "
    "touch /usr/nd-x 2>/dev/null && echo image-writable; "
    "touch {rootfs}/nd-x 2>/dev/null && echo store-writable; "
    "mount -o remount,rw / 2>/dev/null && echo remounted; "
    "cat /proc/1/environ >/dev/null 2>&1 && echo host-init-environ; "
    "echo done"
)


@pytest.fixture(scope="module")
def sh_wrapper(nd_home: Path, dcm2niix_image: ImageRecord) -> Path:
    installed = install_image(dcm2niix_image, nd_home / "sec-prefix")
    wrapper = installed.bin_dir / "sh"
    wrapper.write_text(render_wrapper(dcm2niix_image, "sh"))
    wrapper.chmod(0o755)
    return wrapper


def test_root_in_the_container_holds_no_privilege(
    nd_home: Path, dcm2niix_image: ImageRecord, sh_wrapper: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("this is about containers started by root")
    script = ATTACK.format(rootfs=dcm2niix_image.rootfs)
    env = dict(os.environ, NEURODESK_HOME=str(nd_home), HOME=str(nd_home.parent))
    routes = {
        "exec": [sys.executable, "-m", "neurodesk", "exec", "dcm2niix", "--", "sh", "-c", script],
        "wrapper": [str(sh_wrapper), "-c", script],
    }
    for route, argv in routes.items():
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        assert proc.stdout == "CapEff:\t0000000000000000\ndone\n", (route, proc.stderr)
    assert not (dcm2niix_image.rootfs / "nd-x").exists()


@pytest.fixture
def input_dirs(tmp_path: Path) -> Iterator[list[Path]]:
    """One input directory in each usual place: $HOME (here /var/lib/...), /tmp, /var/tmp."""
    home = Path("/var/lib") / f"nd-sec-home-{os.getpid()}"
    dirs = [home / "data" / "in1", tmp_path / "in2", Path("/var/tmp") / f"nd-sec-{os.getpid()}"]
    for directory in dirs:
        directory.mkdir(parents=True)
        (directory / "source.txt").write_text("original\n")
    yield dirs
    shutil.rmtree(home)
    shutil.rmtree(dirs[2])


def snapshot(directory: Path) -> dict[str, tuple[int, str]]:
    return {str(p): (p.stat().st_mtime_ns, p.read_text()) for p in sorted(directory.rglob("*"))}


def test_batch_inputs_are_read_only_wherever_they_lie(
    nd_home: Path, dcm2niix_image: ImageRecord, input_dirs: list[Path], tmp_path: Path
) -> None:
    need("bwrap")
    listing = tmp_path / "inputs.txt"
    listing.write_text("".join(f"{d}\n" for d in input_dirs))
    before = {str(d): snapshot(d) for d in input_dirs}
    home = input_dirs[0].parents[1]
    script = (
        "echo new > {input}/new.txt 2>/dev/null && echo WROTE; "
        "echo changed > {input}/source.txt 2>/dev/null && echo CHANGED; "
        "cat {input}/source.txt; echo out > {output_dir}/result.txt"
    )
    args = ["batch", "run", "dcm2niix", "--list", str(listing), "--jobs", "1"]
    args += ["--", "sh", "-c", script]
    proc = run_cli(args, nd_home, env={"HOME": str(home)})
    assert proc.returncode == 0, proc.stderr
    assert {str(d): snapshot(d) for d in input_dirs} == before
    logs = list((nd_home / "batches").rglob("log.txt"))
    assert len(logs) >= 3
    text = "".join(p.read_text() for p in logs)
    assert "WROTE" not in text and "CHANGED" not in text and text.count("original") >= 3
    assert len(list((nd_home / "batches").rglob("result.txt"))) >= 3


def test_an_output_root_inside_an_input_is_refused(
    nd_home: Path, dcm2niix_image: ImageRecord, input_dirs: list[Path], tmp_path: Path
) -> None:
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"{input_dirs[1]}\n")
    args = ["batch", "run", "dcm2niix", "--list", str(listing), "--output"]
    args += [str(input_dirs[1] / "out"), "--", "sh", "-c", "echo x > {output_dir}/x"]
    proc = run_cli(args, nd_home)
    assert_one_line_error(proc, "inside the input")
    assert not (input_dirs[1] / "out" / "x").exists()


@pytest.mark.parametrize("spec", ["/data:/data:readonly", "", ":::", "/a:/b:ro:x", "rel:/x"])
def test_bad_bind_specs_are_one_line(nd_home: Path, dcm2niix_image: ImageRecord, spec: str) -> None:
    proc = run_cli(["exec", "-B", spec, "dcm2niix", "--", "true"], nd_home)
    assert_one_line_error(proc, "bind")
