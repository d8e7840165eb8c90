"""The thin path through every layer, with real buildah, bubblewrap and dcm2niix."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from neurodesk.install.installer import install_image
from neurodesk.store import ImageRecord
from tests.conftest import assert_one_line_error, run_cli

pytestmark = pytest.mark.integration


def test_demo_end_to_end(nd_home: Path, dcm2niix_image: ImageRecord) -> None:
    proc = run_cli(["demo"], nd_home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = proc.stdout.strip().splitlines()[-1]
    assert summary.startswith("demo passed:")
    nifti = Path(summary.split()[2])
    assert nifti.is_file() and nifti.suffix == ".nii"
    assert "64x48x20 voxels of 1.1x0.9x2.5 mm" in summary
    assert "[5/5] Checking the NIfTI with nibabel" in proc.stderr


def test_image_is_stored_with_deploy_env_and_labels(dcm2niix_image: ImageRecord) -> None:
    assert dcm2niix_image.deploy_env("DEPLOY_BINS") == ["dcm2niix"]
    assert dcm2niix_image.labels["org.opencontainers.image.title"] == "dcm2niix"
    assert dcm2niix_image.labels["org.neurodesk.recipe.digest"].startswith("sha256:")
    rootfs = dcm2niix_image.rootfs
    assert (rootfs / "build.yaml").is_file() and (rootfs / "README.md").is_file()
    for mount_point in ("data", "scratch", "cvmfs", "neurodesktop-storage"):
        assert (rootfs / mount_point).is_dir()


def test_exec_runs_the_tool_in_the_container(nd_home: Path, dcm2niix_image: ImageRecord) -> None:
    proc = run_cli(["exec", "dcm2niix", "--", "dcm2niix", "-h"], nd_home)
    assert "dcm2niiX version v1.0.20220720" in proc.stdout
    # the container's own os-release, not the host's
    proc = run_cli(["exec", "dcm2niix", "--", "cat", "/build.yaml"], nd_home)
    assert proc.returncode == 0 and "name: dcm2niix" in proc.stdout


def test_exec_propagates_exit_codes(nd_home: Path, dcm2niix_image: ImageRecord) -> None:
    proc = run_cli(["exec", "dcm2niix", "--", "sh", "-c", "exit 7"], nd_home)
    assert proc.returncode == 7


def test_exec_unknown_version_lists_available(nd_home: Path, dcm2niix_image: ImageRecord) -> None:
    proc = run_cli(["exec", "dcm2niix/9.9", "--", "true"], nd_home)
    assert_one_line_error(proc, "no image 'dcm2niix/9.9'", f"dcm2niix/{dcm2niix_image.version}")


@pytest.fixture(scope="module")
def wrapper_bin(nd_home: Path, dcm2niix_image: ImageRecord) -> Path:
    return install_image(dcm2niix_image, nd_home / "installs").bin_dir


def wrapped(bin_dir: Path, script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, env=env, cwd=cwd, check=False
    )


@pytest.mark.parametrize("parent", ["/var/tmp", "/srv", "/home", "/nd-new-top"])
def test_wrapper_converts_in_any_cwd(wrapper_bin: Path, parent: str) -> None:
    """The current directory works inside the container, wherever it is on the host."""
    from neurodesk.demo.check import check_nifti
    from neurodesk.demo.dicom import write_series

    work = Path(parent) / f"nd-cwd-{os.getpid()}"
    (work / "out").mkdir(parents=True, exist_ok=True)
    write_series(work / "dicom")
    proc = wrapped(wrapper_bin, "dcm2niix -z n -f vol -o out dicom", work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert check_nifti(work / "out" / "vol.nii").ok
    subprocess.run(["rm", "-rf", str(work)], check=True)
    if parent == "/nd-new-top":
        Path(parent).rmdir()


ODD_ARGS = ["a b", "'c'", '"d"', "$HOME", "*", "", "line1\nline2", "-x", "--", "\\"]


def test_wrapper_passes_arguments_exactly(dcm2niix_image: ImageRecord, tmp_path: Path) -> None:
    """Spaces, quotes, globs, empty arguments and newlines reach the program untouched."""
    from neurodesk.install.wrapper import render_wrapper

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "printf"
    wrapper.write_text(render_wrapper(dcm2niix_image, "printf", bin_dir))
    wrapper.chmod(0o755)
    proc = subprocess.run(
        [str(wrapper), "[%s]", *ODD_ARGS], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "".join(f"[{a}]" for a in ODD_ARGS)


def test_wrapper_exit_code_and_pipes(wrapper_bin: Path, tmp_path: Path) -> None:
    proc = wrapped(wrapper_bin, "dcm2niix /nonexistent-dir; echo rc=$?", tmp_path)
    assert "rc=0" not in proc.stdout
    proc = wrapped(wrapper_bin, "dcm2niix -h | head -1", tmp_path)
    assert proc.stdout.startswith("Chris Rorden's dcm2niiX")


def test_wrapper_says_when_its_image_is_gone(
    nd_home: Path, dcm2niix_image: ImageRecord, tmp_path: Path
) -> None:
    # A private copy of the store (hard links: instant), so its image can really disappear:
    # wrappers find their image through the prefix's store link, or where it was at install.
    store = tmp_path / "store"
    subprocess.run(["cp", "-al", str(dcm2niix_image.store_root), str(store)], check=True)
    record = dataclasses.replace(dcm2niix_image, store_root=store)
    install = install_image(record, tmp_path / "prefix")
    subprocess.run(["rm", "-rf", str(record.image_dir)], check=True)
    proc = subprocess.run([str(install.bin_dir / "dcm2niix"), "-h"], capture_output=True, text=True)
    assert proc.returncode == 127
    assert proc.stderr.count("\n") == 1
    assert dcm2niix_image.id in proc.stderr and "neurodesk install dcm2niix" in proc.stderr


def test_missing_debootstrap_when_a_base_must_be_made(home: Path, tmp_path: Path) -> None:
    """No base image and no debootstrap: one line naming the package, nothing registered."""
    import shutil
    import sys

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in ("buildah", "bwrap", "tar"):
        found = shutil.which(program)
        assert found is not None
        (bin_dir / program).symlink_to(found)
    path = f"{bin_dir}:{Path(sys.executable).parent}"
    proc = run_cli(["build", "dcm2niix"], home, env={"PATH": path, "NEURODESK_OFFLINE": "1"})
    assert_one_line_error(proc, "'debootstrap' is not installed", "apt-get install debootstrap")
    assert not (home / "store" / "refs").exists()
