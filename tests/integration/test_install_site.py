"""A site-wide install used by another account, and the install/uninstall CLI on bad input.

The administrator (root here) installs under a shared prefix with the store inside it; a real
unprivileged user only runs ``module use`` and calls the tool, in a login shell, and cannot
write to the tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from neurodesk.store import ImageRecord
from tests.conftest import assert_one_line_error, run_cli
from tests.integration.conftest import need

pytestmark = pytest.mark.integration

USER = "ndtest"


def _user_exists() -> bool:
    return subprocess.run(["id", USER], capture_output=True, check=False).returncode == 0


@pytest.fixture(scope="module")
def site_user() -> Iterator[str]:
    need("useradd", "userdel", "su")
    if _user_exists():  # left over from an interrupted run
        subprocess.run(["userdel", "-r", USER], capture_output=True, check=False)
    subprocess.run(["useradd", "-m", "-s", "/bin/bash", USER], check=True)
    yield USER
    subprocess.run(["userdel", "-r", USER], capture_output=True, check=False)


@pytest.fixture(scope="module")
def site(dcm2niix_image: ImageRecord) -> Iterator[Path]:
    """/opt/nd-site-<pid>: NEURODESK_HOME and install prefix at once (the store inside it)."""
    root = Path("/opt") / f"nd-site-{os.getpid()}"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    subprocess.run(["cp", "-al", str(dcm2niix_image.store_root), str(root / "store")], check=True)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def as_user(user: str, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["su", user, "-c", f"bash -l -c {_quote(script)}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd="/",
    )


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def test_site_install_used_by_an_unprivileged_user(
    site: Path, site_user: str, dcm2niix_image: ImageRecord, tmp_path: Path
) -> None:
    need("bwrap")
    if not Path("/etc/profile.d/lmod.sh").is_file():
        pytest.skip("Lmod's login-shell setup is missing (apt-get install lmod)")
    from neurodesk.demo.check import check_nifti
    from neurodesk.demo.dicom import write_series

    proc = run_cli(["install", "dcm2niix", "--prefix", str(site)], site)
    assert proc.returncode == 0, proc.stderr
    assert not (site / "store").is_symlink()  # the store lives in the prefix itself
    data = Path("/var/tmp") / f"nd-site-dicom-{os.getpid()}"
    try:
        write_series(data / "dicom")
        subprocess.run(["chmod", "-R", "a+rX", str(data)], check=True)
        proc = as_user(
            site_user,
            f"""
            set -e
            module use {site}/modules
            module load dcm2niix
            command -v dcm2niix
            dcm2niix -h | head -1
            mkdir -p ~/out && cd ~
            dcm2niix -z n -f vol -o out {data}/dicom >/dev/null
            touch {site}/modules/written-by-user 2>/dev/null && echo WRITABLE || echo read-only
            """,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"{site}/containers/{dcm2niix_image.id}/bin/dcm2niix" in proc.stdout
        assert "Chris Rorden's dcm2niiX" in proc.stdout
        assert "read-only" in proc.stdout
        nifti = Path(f"~{site_user}").expanduser() / "out" / "vol.nii"
        assert nifti.stat().st_uid != 0  # written by the user, through $HOME bound in
        assert check_nifti(nifti).ok
    finally:
        shutil.rmtree(data, ignore_errors=True)


def test_install_unknown_version_lists_the_available_ones(
    nd_home: Path, dcm2niix_image: ImageRecord, tmp_path: Path
) -> None:
    proc = run_cli(["install", "dcm2niix/9.9", "--prefix", str(tmp_path / "p")], nd_home)
    assert_one_line_error(proc, "dcm2niix/9.9", f"dcm2niix/{dcm2niix_image.version}")
    assert not (tmp_path / "p").exists()


def test_cli_install_json_and_exact_uninstall(
    nd_home: Path, dcm2niix_image: ImageRecord, tmp_path: Path
) -> None:
    prefix = tmp_path / "prefix"
    mine = prefix / "modules" / "dcm2niix" / "my-notes.txt"
    proc = run_cli(["install", "dcm2niix", "--prefix", str(prefix), "--json"], nd_home)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["commands"] == ["dcm2niix"]
    assert info["module"] == f"dcm2niix/{dcm2niix_image.version}"
    assert Path(info["bin"], "dcm2niix").is_file()
    mine.write_text("kept")
    proc = run_cli(["uninstall", "dcm2niix", "--prefix", str(prefix)], nd_home)
    assert proc.returncode == 0, proc.stderr
    left = sorted(str(p.relative_to(prefix)) for p in prefix.rglob("*"))
    assert left == ["modules", "modules/dcm2niix", "modules/dcm2niix/my-notes.txt"]
    proc = run_cli(["uninstall", "dcm2niix", "--prefix", str(prefix)], nd_home)
    assert_one_line_error(proc, "not installed", "installed there: none")


def test_desktop_files_pass_desktop_file_validate(
    nd_home: Path, dcm2niix_image: ImageRecord, tmp_path: Path
) -> None:
    need("desktop-file-validate")
    prefix = tmp_path / "prefix"
    assert run_cli(["install", "dcm2niix", "--prefix", str(prefix)], nd_home).returncode == 0
    files = sorted((prefix / "share").rglob("*.desktop")) + sorted(
        (prefix / "share").rglob("*.directory")
    )
    assert len(files) >= 3
    proc = subprocess.run(
        ["desktop-file-validate", *map(str, files)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_missing_image_message_names_the_moved_tree(
    dcm2niix_image: ImageRecord, tmp_path: Path
) -> None:
    """After the tree moved and its image went away, the one-line message names the new place."""
    need("bwrap")
    from neurodesk.install.installer import install_image
    from neurodesk.store import Store

    old = tmp_path / "old"
    old.mkdir()
    subprocess.run(["cp", "-al", str(dcm2niix_image.store_root), str(old / "store")], check=True)
    r = dcm2niix_image
    record = Store(old / "store").resolve(f"{r.name}/{r.version}/{r.builddate}")
    install_image(record, old / "installs")
    new = old.rename(tmp_path / "new")
    wrapper = new / "installs" / "containers" / record.id / "bin" / "dcm2niix"
    assert subprocess.run([str(wrapper), "-h"], capture_output=True, check=False).returncode == 0
    shutil.rmtree(new / "store" / "images")
    proc = subprocess.run([str(wrapper), "-h"], capture_output=True, text=True, check=False)
    assert proc.returncode == 127
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert f"{record.id} is missing from {new}/installs/store" in proc.stderr
    assert f"neurodesk install dcm2niix/{record.version} --prefix {new}/installs" in proc.stderr


def test_wrapper_reached_through_a_symlink_in_a_moved_tree(
    dcm2niix_image: ImageRecord, tmp_path: Path
) -> None:
    """A user links a wrapper into ~/bin; the tree (with its store) then moves: still works."""
    need("bwrap")
    from neurodesk.install.installer import install_image
    from neurodesk.store import Store

    old = tmp_path / "old"
    old.mkdir()
    subprocess.run(["cp", "-al", str(dcm2niix_image.store_root), str(old / "store")], check=True)
    r = dcm2niix_image
    record = Store(old / "store").resolve(f"{r.name}/{r.version}/{r.builddate}")
    install_image(record, old / "installs")
    new = old.rename(tmp_path / "new")
    (tmp_path / "bin").mkdir()
    link = tmp_path / "bin" / "dcm2niix"
    link.symlink_to(new / "installs" / "containers" / record.id / "bin" / "dcm2niix")
    proc = subprocess.run(
        ["sh", "-c", "dcm2niix -h | head -1"],
        capture_output=True,
        text=True,
        env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)},
        cwd=tmp_path,
        check=False,
    )
    assert proc.stdout.startswith("Chris Rorden's dcm2niiX"), proc.stderr
