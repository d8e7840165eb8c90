"""Re-running a batch task from its record: the same outputs bit for bit with bwrap, with
podman, and through the wrappers of an install tree that was moved; records that cannot be
re-run here say why in one line. Also ``cite --batch`` and ``sbom`` on the real image."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from neurodesk.demo.dicom import SeriesGeometry, write_series
from neurodesk.store import ImageRecord
from tests.conftest import assert_one_line_error, run_cli
from tests.integration.conftest import need

pytestmark = pytest.mark.integration

GEOMETRY = SeriesGeometry(columns=32, rows=24, slices=6)


@pytest.fixture(scope="module")
def task_record(
    dcm2niix_image: ImageRecord, nd_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """One dcm2niix batch task over a generated DICOM series; its record.json."""
    root = tmp_path_factory.mktemp("rerun")
    write_series(root / "sourcedata" / "sub-01" / "ses-01" / "dicom", GEOMETRY)
    out = root / "derivatives"
    proc = run_cli(
        ["batch", "dcm2niix", "--bids", str(root / "sourcedata"), "--output", str(out), "--",
         "dcm2niix", "-o", "{output_dir}", "-f", "sub-{subject}_T1w", "{input}/dicom"],
        nd_home,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    match = re.search(r"^batch (\S+): (/\S+)$", proc.stderr, re.MULTILINE)
    assert match, proc.stderr
    return Path(match.group(2)) / "tasks" / "0000" / "record.json"


def rerun(record: Path, home: Path, *args: str) -> dict[str, object]:
    proc = run_cli(["rerun", str(record), "--json", *args], home)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    result = json.loads(proc.stdout)
    assert isinstance(result, dict)
    return result


def test_rerun_reproduces_outputs_bit_for_bit_with_bwrap_and_podman(
    task_record: Path, nd_home: Path
) -> None:
    record = json.loads(task_record.read_text())
    assert sorted(Path(p).suffix for p in record["outputs"]) == [".json", ".nii"]
    originals = {p: Path(p).stat().st_mtime_ns for p in record["outputs"]}
    results = [rerun(task_record, nd_home)]
    need("podman", "runc")
    results.append(rerun(task_record, nd_home, "--runtime", "podman"))
    for result in results:
        assert result["identical"] is True
        assert sorted(result["same"]) == ["sub-01_T1w.json", "sub-01_T1w.nii"]
        assert Path(str(result["output_dir"])) != Path(record["cwd"])
    assert {p: Path(p).stat().st_mtime_ns for p in record["outputs"]} == originals


def test_rerun_through_a_moved_install_tree(
    task_record: Path, nd_home: Path, tmp_path: Path
) -> None:
    first = tmp_path / "tree"
    assert run_cli(["install", "dcm2niix", "--prefix", str(first)], nd_home).returncode == 0
    moved = tmp_path / "moved" / "tree"
    moved.parent.mkdir()
    shutil.move(first, moved)
    result = rerun(task_record, nd_home, "--prefix", str(moved))
    assert result["identical"] is True and len(result["same"]) == 2  # type: ignore[arg-type]

    # The whole home (store and an install tree inside it) moved elsewhere: a hard-linked copy,
    # used from its new place only, the old one out of reach of the wrappers' fallback.
    home = tmp_path / "elsewhere" / "ndhome"
    home.parent.mkdir()
    subprocess.run(["cp", "-al", str(nd_home), str(home)], check=True)
    installs = home / "installs"
    assert run_cli(["install", "dcm2niix", "--prefix", str(installs)], home).returncode == 0
    relocated = tmp_path / "relocated"
    shutil.move(home, relocated)
    result = rerun(task_record, relocated, "--prefix", str(relocated / "installs"))
    assert result["identical"] is True and len(result["same"]) == 2  # type: ignore[arg-type]


def test_a_changed_output_is_reported(task_record: Path, nd_home: Path, tmp_path: Path) -> None:
    record = json.loads(task_record.read_text())
    nifti = next(p for p in record["outputs"] if p.endswith(".nii"))
    record["outputs"][nifti] = "sha256:" + "0" * 64
    forged = tmp_path / "record.json"
    forged.write_text(json.dumps(record))
    proc = run_cli(["rerun", str(forged)], nd_home)
    assert_one_line_error(proc, "not reproduced: 1 output(s) differ")
    assert "DIFFERS  sub-01_T1w.nii" in proc.stdout


def test_records_that_cannot_be_rerun_here_say_why(
    task_record: Path, nd_home: Path, tmp_path: Path
) -> None:
    record = json.loads(task_record.read_text())

    def forged(**changes: object) -> Path:
        path = tmp_path / f"record-{len(list(tmp_path.iterdir()))}.json"
        path.write_text(json.dumps({**record, **changes}))
        return path

    elsewhere = {"/nfs/lab/other/sub-01/dicom/IM0001.dcm": "sha256:" + "1" * 64}
    proc = run_cli(["rerun", str(forged(host="cluster-node-7", inputs=elsewhere))], nd_home)
    assert_one_line_error(proc, "not on this machine", "from host cluster-node-7")
    image = {**record["image"], "digest": "sha256:" + "2" * 64}
    assert_one_line_error(run_cli(["rerun", str(forged(image=image))], nd_home),
                          "is not in this store", "neurodesk sync")  # fmt: skip
    changed = dict(record["inputs"])
    changed[next(iter(changed))] = "sha256:" + "3" * 64
    assert_one_line_error(run_cli(["rerun", str(forged(inputs=changed))], nd_home),
                          "has changed since the record was made")  # fmt: skip
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    proc = run_cli(["rerun", str(task_record), "--output", str(full)], nd_home)
    assert_one_line_error(proc, "is not empty")
    assert sorted(p.name for p in full.iterdir()) == ["keep.txt"]
    junk = tmp_path / "junk.json"
    junk.write_text('{"hello": 1}')
    assert_one_line_error(run_cli(["rerun", str(junk)], nd_home), "is not a neurodesk task record")
    assert_one_line_error(run_cli(["rerun", str(tmp_path / "none.json")], nd_home),
                          "no provenance record")  # fmt: skip


def test_cite_batch_and_sbom_of_the_real_image(
    task_record: Path, dcm2niix_image: ImageRecord, nd_home: Path
) -> None:
    batch_dir = task_record.parent.parent.parent
    proc = run_cli(["cite", "--batch", str(batch_dir)], nd_home)
    assert proc.returncode == 0, proc.stderr
    assert f"{dcm2niix_image.id}@{dcm2niix_image.digest}" in proc.stdout
    assert "10.1038/s41592-023-02145-x" in proc.stdout
    record = json.loads(task_record.read_text())
    assert record["image"]["reference"] == f"{dcm2niix_image.id}@{dcm2niix_image.digest}"

    sbom = run_cli(["sbom", "dcm2niix"], nd_home)
    assert sbom.returncode == 0, sbom.stderr
    components = {c["name"]: c for c in json.loads(sbom.stdout)["components"]}
    version = dcm2niix_image.version  # Debian's package version starts with the tool's
    assert components["dcm2niix"]["version"].startswith(version)
    assert components["dcm2niix"]["purl"].startswith("pkg:deb/debian/dcm2niix@")
    assert "libc6" in components and len(components) > 20
