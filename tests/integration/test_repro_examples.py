"""The example notebooks run in the suite: the dcm2niix one against the session's image; the
heavy ones (dcm2bids, nilearn, dipy images take minutes to build) run when their image is in
the store and are otherwise skipped with a one-line reason. Every notebook gets a page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neurodesk.paths import Paths
from neurodesk.store import ImageRecord, Store
from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.integration


def test_example_notebooks_run_and_render(
    dcm2niix_image: ImageRecord, nd_home: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    proc = run_cli(["examples", "test", str(REPO / "examples"), "--html", str(site), "--json"],
                   nd_home)  # fmt: skip
    assert proc.returncode == 0, proc.stderr + proc.stdout
    outcomes = {n["name"]: n for n in json.loads(proc.stdout)["notebooks"]}
    assert outcomes["01_dicom_to_nifti_bids"]["status"] == "passed"
    have = {r.name for r in Store(Paths(nd_home).store).images()}
    for name, outcome in outcomes.items():
        missing = [i for i in outcome["images"] if i not in have]
        if missing:
            assert outcome["status"] == "skipped" and outcome["heavy"], outcome
            assert f"image '{missing[0]}' is not in the store" in outcome["reason"]
        else:
            assert outcome["status"] == "passed", outcome
        assert (site / f"{name}.html").is_file()
    page = (site / "01_dicom_to_nifti_bids.html").read_text()
    assert "sub-01/ses-01/anat/sub-01_ses-01_T1w.nii" in page  # the executed cell's output
    assert dcm2niix_image.digest in page  # GeneratedBy names the exact container
    index = (site / "index.html").read_text()
    assert "01_dicom_to_nifti_bids.html" in index and "passed" in index
    work = nd_home / "work" / "examples" / "01_dicom_to_nifti_bids" / "bids"
    description = json.loads((work / "dataset_description.json").read_text())
    assert description["GeneratedBy"][0]["Container"]["URI"].endswith(dcm2niix_image.digest)
