"""fulltest.yaml suites run in real images with bwrap: every feature of the format.

Most cases use the host's own root as a read-only image (a sandbox record, nothing built:
bwrap starts in milliseconds); the last runs a suite with every feature through the CLI against
the session's dcm2niix image, reading its output with nibabel on the host.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from neurodesk.build.datasets import DatasetSource
from neurodesk.build.fulltest import SuiteRun, run_suite
from neurodesk.recipe.fulltest import parse_fulltest
from neurodesk.store import ImageRecord
from tests.integration.conftest import need

PY = sys.executable  # visible inside the host-root image (its top-level directories are bound)


@pytest.fixture(scope="module")
def host_image() -> ImageRecord:
    need("bwrap")
    return ImageRecord(
        name="host", version="1", builddate="20260101", digest="sha256:" + "0" * 64,
        store_root=Path("/nonexistent"), external_rootfs=Path("/"), source="sandbox",
    )  # fmt: skip


def run(
    image: ImageRecord, tmp: Path, doc: dict[str, object], **kwargs: object
) -> tuple[SuiteRun, dict[str, tuple[str, str]]]:
    suite = parse_fulltest(doc, tmp / "fulltest.yaml")
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"nd-ft-{os.getpid()}-{time.monotonic_ns()}"
    kwargs.setdefault("sources", DatasetSource(url=None))
    result = run_suite(image, suite, work, **kwargs)  # type: ignore[arg-type]
    return result, {r.name: (r.status, r.detail) for r in result.results}


def suite(*tests: dict[str, object], **top: object) -> dict[str, object]:
    return {"name": "t", "version": "1", "tests": list(tests), **top}


def test_exit_codes_and_output(host_image: ImageRecord, tmp_path: Path) -> None:
    _, got = run(host_image, tmp_path, suite(
        {"name": "ok", "command": "echo hello world", "expected_output_contains": "hello"},
        {"name": "list", "command": "echo a; echo b >&2", "expected_output_contains": ["a", "b"]},
        {"name": "missing text", "command": "echo hi", "expected_output_contains": "bye"},
        {"name": "code 3", "command": "exit 3", "expected_exit_code": 3},
        {"name": "wrong code", "command": "exit 2"},
        {"name": "not zero", "command": "exit 5", "expected_exit_code_not": 0},
        {"name": "not zero but zero", "command": "true", "expected_exit_code_not": 0},
        {"name": "ignored", "command": "exit 9", "ignore_exit_code": True},
        {"name": "script", "script": "x=$((6 * 7))\necho answer=$x\n",
         "expected_output_contains": "answer=42"},
    ))  # fmt: skip
    assert got["ok"][0] == got["list"][0] == got["code 3"][0] == "pass"
    assert got["not zero"][0] == got["ignored"][0] == got["script"][0] == "pass"
    assert got["missing text"] == ("fail", "output lacks 'bye'")
    assert got["wrong code"] == ("fail", "expected exit code 0, got 2")
    assert got["not zero but zero"] == ("fail", "exit code should not be 0")


def test_depends_on_tags_and_timeouts(host_image: ImageRecord, tmp_path: Path) -> None:
    doc = suite(
        {"name": "a", "command": "false"},
        {"name": "b", "command": "true", "depends_on": "a"},
        {"name": "c", "command": "true", "depends_on": ["b"]},
        {"name": "slow", "command": "sleep 5", "timeout": 1},
        {"name": "slow default", "command": "sleep 5"},
        {"name": "tagged", "command": "true", "tags": ["quick"], "depends_on": "d"},
        {"name": "d", "command": "true"},
        default_timeout=1,
    )
    _, got = run(host_image, tmp_path, doc)
    assert got["a"][0] == "fail"
    assert got["b"] == ("skip", "depends on a, which did not pass")
    assert got["c"] == ("skip", "depends on b, which did not pass")
    assert got["slow"] == ("fail", "timed out after 1 s")
    assert got["slow default"] == ("fail", "timed out after 1 s")
    _, only = run(host_image, tmp_path, doc, tags=["quick"])
    assert set(only) == {"tagged", "d"}  # a tagged test brings what it depends on


def test_parallel_jobs_run_independent_tests_at_once(
    host_image: ImageRecord, tmp_path: Path
) -> None:
    doc = suite(*({"name": f"s{i}", "command": "sleep 1"} for i in range(4)))
    started = time.monotonic()
    _, got = run(host_image, tmp_path, doc, jobs=4)
    assert all(status == "pass" for status, _ in got.values())
    assert time.monotonic() - started < 3.5  # one at a time takes 4 s or more


def test_variables_env_setup_and_cleanup(host_image: ImageRecord, tmp_path: Path) -> None:
    marker = tmp_path / "cleaned"
    doc = suite(
        {"name": "vars", "command": "echo $greeting ${who} $FOO $BAR; test -d ${output_dir}",
         "expected_output_contains": "hello world foo bar"},
        {"name": "setup ran", "command": "cat from_setup from_host"},
        {"name": "own env_setup", "command": "echo $BAR", "env_setup": "export BAR=mine",
         "expected_output_contains": "mine"},
        test_data={"output_dir": "out"},
        greeting="hello", who="world",
        env={"FOO": "foo"}, env_setup="export BAR=bar",
        setup={"script": "echo in-image > from_setup", "host_script": "echo on-host > from_host"},
        cleanup={"host_script": f"touch {marker}"},
    )  # fmt: skip
    _, got = run(host_image, tmp_path, doc)
    assert all(status == "pass" for status, _ in got.values()), got
    assert marker.exists()


def test_failed_setup_fails_every_test(host_image: ImageRecord, tmp_path: Path) -> None:
    doc = suite({"name": "x", "command": "true"}, setup={"script": "echo broken; exit 4"})
    _, got = run(host_image, tmp_path, doc)
    assert got["x"][0] == "error" and "setup.script exited 4" in got["x"][1]


def test_validate_checks_images_on_the_host(host_image: ImageRecord, tmp_path: Path) -> None:
    make = (
        f'{PY} -c "import nibabel as nb, numpy as np;'
        " nb.save(nb.Nifti1Image(np.zeros((4, 5, 6), 'f4'), np.eye(4)), 'a.nii');"
        " nb.save(nb.Nifti1Image(np.zeros((4, 5, 6, 2), 'f4'), np.eye(4)), 'b.nii')\""
    )
    _, got = run(host_image, tmp_path, suite(
        {"name": "make", "command": make + " && mkdir -p d && touch d/f",
         "validate": [{"output_exists": "a.nii"}, {"output_dir_not_empty": "d"},
                      {"is_3d": "a.nii"}, {"is_4d": "b.nii"}]},
        {"name": "same", "command": "true", "validate": [{"same_dimensions": ["a.nii", "a.nii"]}]},
        {"name": "differ", "command": "true",
         "validate": [{"same_dimensions": ["a.nii", "b.nii"]}]},
        {"name": "not 3d", "command": "true", "validate": [{"is_3d": "b.nii"}]},
        {"name": "absent", "command": "true", "validate": [{"output_exists": "nope.nii"}]},
    ))  # fmt: skip
    assert got["make"][0] == got["same"][0] == "pass", got
    assert got["differ"] == ("fail", "dimensions differ: (4, 5, 6) vs (4, 5, 6, 2)")
    assert got["not 3d"][1] == "b.nii is 4-D (4, 5, 6, 2), not 3-D"
    assert got["absent"][1].startswith("output not found: ")


@pytest.fixture
def openneuro(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A loopback stand-in for OpenNeuro's bucket: serves ds000001/sub-01/anat/T1w.nii."""
    root = tmp_path / "bucket"
    (root / "ds000001/sub-01/anat").mkdir(parents=True)
    (root / "ds000001/sub-01/anat/T1w.nii").write_bytes(b"nifti bytes")
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()


def test_datasets_are_fetched_once_or_skip_with_one_line(
    host_image: ImageRecord, tmp_path: Path, openneuro: tuple[str, list[str]]
) -> None:
    url, requests = openneuro
    doc = suite(
        {"name": "reads", "command": "cat $t1w", "expected_output_contains": "nifti bytes"},
        {"name": "other", "command": "cat ds000002/x.nii"},
        {"name": "free", "command": "true"},
        test_data={"t1w": "ds000001/sub-01/anat/T1w.nii"},
        required_files=[
            {"dataset": "ds000001", "files": ["sub-01/anat/T1w.nii"]},
            {"dataset": "ds000002", "files": ["x.nii"]},
        ],
    )
    sources = DatasetSource(cache=tmp_path / "cache", url=url, timeout=5)
    result, got = run(host_image, tmp_path, doc, sources=sources)
    assert got["reads"][0] == "pass" and got["free"][0] == "pass"
    assert got["other"] == ("skip", "needs ds000002: x.nii")
    assert len(result.notes) == 1 and "ds000002" in result.notes[0] and "x.nii" in result.notes[0]
    run(host_image, tmp_path, doc, sources=sources)  # the second run reads the cache
    assert requests.count("/ds000001/sub-01/anat/T1w.nii") == 1
    data = tmp_path / "data"
    (data / "ds000002").mkdir(parents=True)
    (data / "ds000002/x.nii").write_text("local")
    _, got = run(
        host_image, tmp_path, doc, sources=DatasetSource((data,), tmp_path / "cache", None)
    )
    assert got["other"][0] == "pass"


EVERY_FEATURE = """\
name: dcm2niix
version: "{version}"
default_timeout: 120
env: {{PHANTOM_ROWS: "32"}}
env_setup: export PHANTOM_COLS=24
series: phantom
test_data:
  output_dir: test_output
  extra: ds000001/notes.txt
required_files:
  - dataset: ds000001
    files: [notes.txt]
setup:
  host_script: echo prepared > host_marker
  script: |
    python3 - dicom <<'PY'
    import os, struct, sys
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
    rows, cols, n = int(os.environ["PHANTOM_ROWS"]), int(os.environ["PHANTOM_COLS"]), 6
    os.makedirs(sys.argv[1], exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    for k in range(n):
        uid = generate_uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = MRImageStorage, uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, uid
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientName, ds.PatientID, ds.Modality = "Phantom", "01", "MR"
        ds.SeriesDescription = ds.ProtocolName = "anat-T1w"
        ds.SeriesNumber, ds.InstanceNumber = 1, k + 1
        ds.ImagePositionPatient = [0.0, 0.0, 2.0 * k]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing, ds.SliceThickness = [1.0, 1.0], 2.0
        ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, cols, 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = struct.pack(f"<{{rows * cols}}H", *([k] * rows * cols))
        ds.save_as(os.path.join(sys.argv[1], f"s{{k}}.dcm"), write_like_original=False)
    PY
cleanup:
  script: rm -rf dicom
  host_script: touch cleaned_up
tests:
  - name: version
    command: dcm2niix -v
    expected_exit_code_not: 127
    ignore_exit_code: true
    expected_output_contains: Chris Rorden
    tags: [quick]
  - name: convert
    description: DICOM series to NIfTI
    command: dcm2niix -z n -f ${{series}} -o ${{output_dir}} dicom
    expected_exit_code: 0
    expected_output_contains: [Convert, "6 DICOM"]
    timeout: 60
    validate:
      - output_exists: ${{output_dir}}/phantom.nii
      - is_3d: ${{output_dir}}/phantom.nii
      - same_dimensions: ["${{output_dir}}/phantom.nii", "${{output_dir}}/phantom.nii"]
      - output_dir_not_empty: ${{output_dir}}
  - name: sidecar
    depends_on: convert
    script: |
      grep -q anat-T1w ${{output_dir}}/phantom.json
      echo "rows $PHANTOM_ROWS cols $PHANTOM_COLS"
    expected_output_contains: rows 32 cols 24
  - name: bad input fails
    # an output folder that does not exist fails whatever the step's cwd holds (a missing
    # *input* makes dcm2niix search the cwd instead, which holds the series: it would pass)
    command: dcm2niix -o /nonexistent-out dicom
    expected_exit_code_not: 0
  - name: after a failure
    command: "false"
  - name: skipped dependent
    depends_on: [after a failure]
    command: "true"
  - name: needs a missing dataset
    command: cat $extra
"""


def test_every_feature_against_the_dcm2niix_image(
    dcm2niix_image: ImageRecord, tmp_path: Path, nd_home: Path
) -> None:
    recipe = tmp_path / "dcm2niix"
    recipe.mkdir()
    shipped = Path(__file__).parents[2] / "recipes" / "dcm2niix" / "build.yaml"
    (recipe / "build.yaml").write_text(shipped.read_text())
    version = yaml.safe_load(shipped.read_text())["version"]
    (recipe / "fulltest.yaml").write_text(EVERY_FEATURE.format(version=version))
    junit = tmp_path / "report.xml"
    env = {**os.environ, "NEURODESK_HOME": str(nd_home), "NEURODESK_TEST_DATA": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "neurodesk", "test", str(recipe), "--offline", "--jobs", "2",
         "--json", "--junit", str(junit)],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout.startswith("{"), proc.stderr
    report = json.loads(proc.stdout)
    got = {t["name"]: (t["status"], t["detail"]) for t in report["tests"]}
    assert proc.returncode == 1  # "after a failure" fails on purpose
    for name in ("version", "convert", "sidecar", "bad input fails", "test_deploy.sh"):
        assert got[name][0] == "pass", (name, got, report)
    assert got["after a failure"][0] == "fail"
    assert got["skipped dependent"] == ("skip", "depends on after a failure, which did not pass")
    assert got["needs a missing dataset"] == ("skip", "needs ds000001: notes.txt")
    assert report["notes"] == [
        "dataset ds000001 unavailable (not in the data directories): notes.txt"
    ]
    cases = ET.parse(junit).getroot().findall("testsuite/testcase")
    assert {c.get("name") for c in cases} == set(got)
    assert len(ET.parse(junit).getroot().findall("testsuite/testcase/skipped")) == 2


def test_test_all_over_the_shipped_recipes(dcm2niix_image: ImageRecord, nd_home: Path) -> None:
    """The shipped dcm2niix suite passes in its image; the recipes not built are counted."""
    env = {**os.environ, "NEURODESK_HOME": str(nd_home)}
    proc = subprocess.run(
        [sys.executable, "-m", "neurodesk", "test", "--all", "--offline"],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    summary = proc.stdout.strip().splitlines()[-1]
    shipped = Path(__file__).parents[2] / "recipes"
    assert summary.startswith(f"{len(list(shipped.glob('*/build.yaml')))} recipes: ")
    assert " 0 failed, 0 refused," in summary and " 0 tracebacks" in summary, proc.stdout
    assert int(summary.split(": ")[1].split(" passed")[0]) >= 1  # at least dcm2niix
    assert "converts a generated DICOM series" in proc.stdout
