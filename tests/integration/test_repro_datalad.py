"""DataLad interop: a neurodesk image registered with ``datalad containers-add`` (the lock file
as the dataset's container "image", ``neurodesk exec-lock`` as the call format) runs through
``datalad containers-run``, and the run record lands in the dataset's history (issue 20).
Real datalad, datalad-container and git-annex."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import pytest

from neurodesk.demo.dicom import SeriesGeometry, write_series
from neurodesk.store import ImageRecord
from tests.conftest import REPO, assert_one_line_error, run_cli
from tests.integration.conftest import need

pytestmark = pytest.mark.integration

GEOMETRY = SeriesGeometry(columns=32, rows=24, slices=6)


def datalad_env(home: Path, nd_home: Path) -> dict[str, str]:
    home.mkdir(exist_ok=True)
    (home / ".gitconfig").write_text("[user]\n\tname = Test\n\temail = test@example.org\n")
    venv_bin = str(Path(sys.executable).parent)  # 'neurodesk' and 'datalad' of this venv
    return dict(
        os.environ,
        HOME=str(home),
        PATH=f"{venv_bin}:{os.environ.get('PATH', '')}",
        NEURODESK_HOME=str(nd_home),
        NEURODESK_RECIPES=str(REPO / "recipes"),
    )


def datalad(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "datalad"), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_containers_run_with_neurodesk_lands_in_the_history(
    dcm2niix_image: ImageRecord, nd_home: Path, tmp_path: Path
) -> None:
    need("git-annex", "bwrap")
    env = datalad_env(tmp_path / "user", nd_home)
    lockfile = tmp_path / "dcm2niix.lock"
    locked = run_cli(["lock", "dcm2niix", "-o", str(lockfile), "--local"], nd_home)
    assert locked.returncode == 0, locked.stderr
    ds = tmp_path / "study"
    datalad(env, tmp_path, "create", str(ds))
    write_series(ds / "sourcedata" / "dicom", GEOMETRY)
    datalad(env, ds, "save", "-m", "DICOM series")
    datalad(env, ds, "containers-add", "dcm2niix", "--url", str(lockfile),
            "--call-fmt", "neurodesk exec-lock {img} -- {cmd}")  # fmt: skip
    (ds / "nifti").mkdir()
    datalad(env, ds, "containers-run", "-n", "dcm2niix", "-m", "convert",
            "--input", "sourcedata/dicom", "--output", "nifti",
            "dcm2niix -w 1 -o nifti -f sub-01_T1w sourcedata/dicom")  # fmt: skip

    assert nib.load(ds / "nifti" / "sub-01_T1w.nii").shape == (32, 24, 6)
    message = subprocess.run(["git", "log", "-1", "--format=%B"], cwd=ds, env=env,
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "[DATALAD RUNCMD] convert" in message
    record = json.loads(re.search(r"=== Do not change lines below ===\n(.*)\n\^\^\^", message,
                                  re.DOTALL).group(1))  # type: ignore[union-attr]  # fmt: skip
    assert record["cmd"].startswith(
        "neurodesk exec-lock .datalad/environments/dcm2niix/image -- dcm2niix"
    )
    assert ".datalad/environments/dcm2niix/image" in record["extra_inputs"]
    assert record["outputs"] == ["nifti"] and record["exit"] == 0
    committed = subprocess.run(["git", "show", "--stat", "--format=", "HEAD"], cwd=ds, env=env,
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "nifti/sub-01_T1w.nii" in committed
    # The image the history names is exactly the locked digest.
    image = json.loads((ds / ".datalad" / "environments" / "dcm2niix" / "image").read_text())
    assert image["tools"][0]["digest"] == dcm2niix_image.digest

    # `datalad rerun` runs the recorded command again (-w 1: dcm2niix overwrites): the same
    # outputs bit for bit, so there is nothing to commit.
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ds, env=env,
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    datalad(env, ds, "rerun")
    again = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ds, env=env,
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert again == head


def test_exec_lock_errors_are_one_line(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "image"
    bad.write_text("not a lock")
    assert_one_line_error(run_cli(["exec-lock", str(bad), "--", "true"], home), "not a neurodesk")
