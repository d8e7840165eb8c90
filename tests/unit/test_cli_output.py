"""What the CLI prints when its output is a pipe: whole rows, ids and paths never cut.

Every command here runs in its own process with stdout and stderr piped (``run_cli``), as in
``neurodesk list | grep ...`` or a script that reads ``batch status``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neurodesk.jobs.batch import define_batch
from neurodesk.jobs.inputs import Input
from neurodesk.paths import Paths
from neurodesk.store import Store
from tests.conftest import assert_one_line_error, run_cli

DIGEST = "sha256:" + "ab" * 32
NAME = "averyveryverylongtoolname-with-quite-a-few-parts"
VERSION = "1.2.3.4.5.6.7.8.9.10.11.12"


@pytest.fixture
def deep_home(tmp_path: Path) -> Path:
    """A home deep enough that every path printed is wider than 80 columns."""
    home = tmp_path / ("a-directory-with-a-long-name-" * 3) / "ndhome"
    ref = home / "store" / "refs" / NAME / VERSION / "20260101.json"
    ref.parent.mkdir(parents=True)
    ref.write_text(
        json.dumps({"name": NAME, "version": VERSION, "builddate": "20260101", "digest": DIGEST})
    )
    return home


def _row(stdout: str, first: str) -> str:
    rows = [line for line in stdout.splitlines() if line.strip().startswith(first)]
    assert len(rows) == 1, stdout
    return rows[0]


def test_images_piped_prints_whole_rows_and_the_full_digest(deep_home: Path) -> None:
    proc = run_cli(["images"], deep_home, env={"COLUMNS": "40"})
    assert proc.returncode == 0, proc.stderr
    row = _row(proc.stdout, NAME)
    assert VERSION in row and DIGEST in row and "20260101" in row
    assert "…" not in proc.stdout


def _batch(home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setenv("NEURODESK_HOME", str(home))
    record = Store(Paths(home).store).resolve(NAME)
    inputs = [Input(tmp_path / f"input-number-{i}.nii.gz", f"input-number-{i}") for i in (1, 2)]
    batch = define_batch(
        record,
        ["convert", "{input}", "{output_dir}"],
        inputs,
        source="list",
        output_root=home / "out",
    )
    return batch.id


def test_batch_list_and_status_piped_never_cut_ids_or_log_paths(
    deep_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    batch_id = _batch(deep_home, monkeypatch, tmp_path)
    assert len(batch_id) > 40
    proc = run_cli(["batch", "list"], deep_home)
    assert proc.returncode == 0, proc.stderr
    row = _row(proc.stdout, batch_id)
    assert f"{NAME}_{VERSION}_20260101" in row

    proc = run_cli(["batch", "status", batch_id], deep_home)
    assert proc.returncode == 0, proc.stderr
    assert batch_id in proc.stdout.splitlines()[0]  # the title, whole
    log = deep_home / "batches" / batch_id / "tasks" / "0000" / "log.txt"
    assert len(str(log)) > 120
    row = _row(proc.stdout, "0 ")
    assert row.rstrip().endswith(str(log)), proc.stdout

    # and the same as JSON, for scripts
    listed = json.loads(run_cli(["batch", "list", "--json"], deep_home).stdout)
    assert [b["batch_id"] for b in listed] == [batch_id]
    logs = json.loads(run_cli(["batch", "logs", batch_id, "--json"], deep_home).stdout)
    assert logs[0]["log"] == str(log)


def test_list_piped_keeps_descriptions_whole(home: Path) -> None:
    as_json = json.loads(run_cli(["list", "--local", "--json"], home).stdout)
    longest = max(as_json, key=lambda t: len(t["description"]))
    assert len(longest["description"]) > 60  # a recipe whose description a terminal would cut
    proc = run_cli(["list", "--local"], home)
    assert proc.returncode == 0, proc.stderr
    row = _row(proc.stdout, longest["name"] + " ")
    assert " ".join(longest["description"].split()) in row


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["instal", "dcm2niix"], "No such command 'instal'"),
        (["install", "--frm", "x", "dcm2niix"], "No such option '--frm'. Did you mean '--from'?"),
        (["list", "--category", "astrology"], "'astrology' is not one of"),
        (["images", "extra"], "unexpected extra argument"),
        (["recipe", "render"], "Missing argument"),
    ],
)
def test_usage_errors_are_one_line(home: Path, args: list[str], needle: str) -> None:
    proc = run_cli(args, home)
    assert_one_line_error(proc, needle, "--help")
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
