"""Provenance records: hashes, completeness, the BIDS GeneratedBy entry, array specs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from neurodesk.errors import NeurodeskError
from neurodesk.jobs.batch import Batch, BatchSpec, TaskSpec
from neurodesk.jobs.derivative import merge_description
from neurodesk.jobs.provenance import (
    ImageInfo,
    RuntimeInfo,
    SchedulerInfo,
    TaskRecord,
    hash_tree,
    is_complete,
)
from neurodesk.jobs.slurm import array_spec

DIGEST = "sha256:" + "ab" * 32
IMAGE = ImageInfo(
    name="tool", version="1.2", builddate="20260101", id="tool_1.2_20260101", digest=DIGEST
)


def record(
    outputs: dict[str, str], exit_code: int = 0, argv: list[str] | None = None
) -> TaskRecord:
    return TaskRecord(
        batch_id="b",
        task=0,
        label="sub-01",
        image=IMAGE,
        runtime=RuntimeInfo(name="bwrap", version="0.8.0", argv=["bwrap"]),
        argv=argv or ["tool"],
        env={"PATH": "/usr/bin"},
        cwd="/",
        inputs={},
        outputs=outputs,
        start="2026-01-01T00:00:00+00:00",
        end="2026-01-01T00:00:01+00:00",
        duration_s=1.0,
        exit_code=exit_code,
        host="h",
        scheduler=SchedulerInfo(name="local"),
        log="/log",
    )


def test_hash_tree_and_completeness(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.nii").write_bytes(b"volume")
    (tmp_path / "b.json").write_text("{}")
    hashes = hash_tree(tmp_path)
    assert hashes == {
        str(tmp_path / "b.json"): "sha256:" + hashlib.sha256(b"{}").hexdigest(),
        str(tmp_path / "d" / "a.nii"): "sha256:" + hashlib.sha256(b"volume").hexdigest(),
    }
    assert hash_tree(tmp_path / "missing") == {}
    done = record(hashes)
    assert is_complete(done, DIGEST, ["tool"])
    assert not is_complete(done, "sha256:" + "cd" * 32, ["tool"])  # another image
    assert not is_complete(done, DIGEST, ["tool", "-x"])  # another command
    assert not is_complete(record(hashes, exit_code=1), DIGEST, ["tool"])
    assert not is_complete(None, DIGEST, ["tool"])
    (tmp_path / "d" / "a.nii").write_bytes(b"changed")
    assert not is_complete(done, DIGEST, ["tool"])
    (tmp_path / "d" / "a.nii").unlink()
    assert not is_complete(done, DIGEST, ["tool"])


def test_record_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    record({"/o": DIGEST}).save(path)
    data = json.loads(path.read_text())
    assert data["schema_version"] == "neurodesk.task-record/1"
    assert data["image"]["digest"] == DIGEST and data["exit_code"] == 0
    assert TaskRecord.load(path) == record({"/o": DIGEST})
    path.write_text("{broken")
    assert TaskRecord.load(path) is None


def test_generated_by_merge(tmp_path: Path) -> None:
    spec = BatchSpec(
        id="tool-123",
        created="2026-01-01T00:00:00+00:00",
        image=IMAGE,
        command=["tool", "{input}"],
        source="bids /data",
        bids_dir="/data",
        output_root=str(tmp_path),
        tasks=[
            TaskSpec(index=0, label="sub-01", input="/data/sub-01", argv=["tool"], output_dir="/o")
        ],
    )
    batch = Batch(tmp_path / "batch", spec)
    description = tmp_path / "dataset_description.json"
    other = {"Name": "fmriprep", "Version": "23"}
    description.write_text(json.dumps({"Name": "My derivative", "GeneratedBy": [other]}))
    merge_description(batch, tmp_path)
    merge_description(batch, tmp_path)  # idempotent: one entry per container
    data = json.loads(description.read_text())
    assert data["Name"] == "My derivative" and data["DatasetType"] == "derivative"
    assert data["BIDSVersion"]
    assert data["GeneratedBy"][0] == other
    entry = data["GeneratedBy"][1]
    assert len(data["GeneratedBy"]) == 2
    assert (entry["Name"], entry["Version"]) == ("tool", "1.2")
    assert entry["Container"]["Type"] == "oci"
    assert entry["Container"]["Tag"] == "tool_1.2:20260101"
    assert DIGEST in entry["Container"]["URI"]
    assert data["SourceDatasets"] == [{"URL": "file:///data"}]
    description.write_text("[1, 2")
    with pytest.raises(NeurodeskError, match="not valid JSON"):
        merge_description(batch, tmp_path)


def test_array_spec() -> None:
    assert array_spec([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert array_spec([4]) == "4"
    assert array_spec([3, 1, 2, 2]) == "1-3"


def test_setup_failure_is_told_apart_from_the_tool_failing(tmp_path: Path) -> None:
    from neurodesk.jobs.task import setup_failed

    with (tmp_path / "log").open("w+b") as log:
        log.write(b"neurodesk: removed 2 output(s) of the previous run\n")
        mark = log.tell()
        log.write(b"bwrap: Can't bind mount /oldroot/tmp on /newroot/tmp: ...\n")
        assert setup_failed(log, mark, 1)
        assert not setup_failed(log, mark, 2)  # bwrap's own failures exit 1
        assert not setup_failed(log, 0, 1)  # only what this attempt wrote counts
        log.write(b"more")  # the position is restored to the end for the next attempt
        assert log.tell() == log.seek(0, 2)
