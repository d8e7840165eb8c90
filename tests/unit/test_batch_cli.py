"""``neurodesk batch`` on bad input: one clear line each; dry runs show the expanded commands.

The image is a store ref written by hand (nothing runs in it here): the real runs are in
tests/integration/test_batch.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import assert_one_line_error, run_cli

DIGEST = "sha256:" + "12" * 32


@pytest.fixture
def store_home(home: Path) -> Path:
    """A home whose store names one image, tool/1.0 (a ref only: enough to define batches)."""
    ref = home / "store" / "refs" / "tool" / "1.0" / "20260101.json"
    ref.parent.mkdir(parents=True)
    ref.write_text(
        json.dumps({"name": "tool", "version": "1.0", "builddate": "20260101", "digest": DIGEST})
    )
    return home


@pytest.fixture
def bids(tmp_path: Path) -> Path:
    for subject in ("01", "02"):
        (tmp_path / "ds" / f"sub-{subject}" / "ses-1" / "anat").mkdir(parents=True)
    return tmp_path / "ds"


def test_help_lists_subcommands(home: Path) -> None:
    proc = run_cli(["batch", "--help"], home)
    assert proc.returncode == 0
    for word in ("status", "logs", "cancel", "resubmit", "summary", "--bids"):
        assert word in proc.stdout
    proc = run_cli(["batch", "run", "--help"], home)
    assert proc.returncode == 0 and "{output_dir}" in proc.stdout and "--partition" in proc.stdout


def test_dry_run_expands_placeholders(store_home: Path, bids: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["batch", "tool", "--bids", str(bids), "--output", str(out), "--dry-run"]
    proc = run_cli(
        [*args, "--", "conv", "-o", "{output_dir}", "{input}/anat", "s{subject}"], store_home
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines == [
        f"sub-01_ses-1: conv -o {out}/sub-01/ses-1 {bids}/sub-01/ses-1/anat s01",
        f"sub-02_ses-1: conv -o {out}/sub-02/ses-1 {bids}/sub-02/ses-1/anat s02",
    ]
    assert not (store_home / "batches").exists()  # a dry run writes nothing


def test_dry_run_shows_what_would_be_submitted(
    store_home: Path, bids: Path, tmp_path: Path
) -> None:
    """With --executor slurm a dry run shows the sbatch command and the script it would
    submit, still writing nothing and needing no SLURM client."""
    out = tmp_path / "out"
    base = ["batch", "tool", "--bids", str(bids), "--output", str(out), "--dry-run"]
    args = [*base, "--executor", "slurm", "--jobs", "3", "--mem", "4G", "--partition", "short"]
    proc = run_cli([*args, "--", "conv", "{input}"], store_home, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 2  # stdout: only the tasks' command lines
    root = store_home / "batches" / proc.stderr.split(":")[0].split()[-1]
    assert f"{root} (dry run: not created)" in proc.stderr
    assert "would submit 2 task(s) as one SLURM job array" in proc.stderr
    (sbatch,) = [line for line in proc.stderr.splitlines() if line.startswith("  sbatch ")]
    for word in ("--array=0-1%3", "--mem=4G", "--partition=short", f"--chdir={root}"):
        assert word in sbatch.split(), sbatch
    assert sbatch.endswith(f"{root}/slurm/submit-1.sh")
    assert "#!/bin/sh" in proc.stderr and "exec " in proc.stderr
    assert '"$SLURM_ARRAY_TASK_ID"' in proc.stderr
    assert not (store_home / "batches").exists()

    proc = run_cli([*base, "--jobs", "2", "--", "conv", "{input}"], store_home)
    assert proc.returncode == 0, proc.stderr
    assert "would run 2 task(s) here, 2 at a time" in proc.stderr, proc.stderr
    assert "sbatch" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--bids", "{bids}", "conv", "{input}"], ["put the command to run after '--'"]),
        (["--", "conv", "{input}"], ["give exactly one input source"]),
        (["--bids", "{bids}", "--glob", "*.x", "--", "conv"], ["(got --bids, --glob)"]),
        (
            ["--bids", "{bids}", "--", "conv", "{subjet}"],
            ["unknown placeholder {subjet}", "{subject}"],
        ),
        (["--glob", "{bids}/*/*.nii", "--", "conv", "{input}"], ["matches no files"]),
        (
            ["--glob", "{bids}/*", "--", "conv", "{session}"],
            ["{session} has no value for input sub-01"],
        ),
        (["--bids", "{bids}/nope", "--", "conv"], ["does not exist"]),
        (["--glob", "{bids}/*", "--env", "X", "--", "conv"], ["--env 'X' is not KEY=VALUE"]),
    ],
)
def test_bad_input_one_line(
    store_home: Path, bids: Path, args: list[str], needles: list[str]
) -> None:
    args = [a.replace("{bids}", str(bids)) for a in args]
    assert_one_line_error(run_cli(["batch", "tool", *args], store_home), *needles)


def test_missing_image(home: Path, bids: Path) -> None:
    proc = run_cli(["batch", "nosuchtool", "--bids", str(bids), "--", "conv", "{input}"], home)
    assert_one_line_error(proc, "no image named 'nosuchtool'", "neurodesk build nosuchtool")


def test_no_slurm_client(store_home: Path, bids: Path) -> None:
    # PATH with only Python on it: sbatch cannot be found
    env = {"PATH": str(Path(sys.executable).parent)}
    args = ["batch", "tool", "--bids", str(bids), "--executor", "slurm", "--", "conv", "{input}"]
    proc = run_cli(args, store_home, env=env)
    assert_one_line_error(proc, "'sbatch' is not installed", "--executor local")


def test_slurm_conf_missing(store_home: Path, bids: Path, tmp_path: Path) -> None:
    env = {"SLURM_CONF": str(tmp_path / "nope.conf")}
    args = ["batch", "tool", "--bids", str(bids), "--executor", "slurm", "--", "conv", "{input}"]
    proc = run_cli(args, store_home, env=env)
    if "is not installed" not in proc.stderr:  # machines without SLURM clients fail earlier
        assert_one_line_error(proc, "SLURM_CONF points to", "nope.conf")


def test_unknown_batch(home: Path) -> None:
    for command in ("status", "summary"):
        assert_one_line_error(run_cli(["batch", command, "nobatch"], home), "no batch 'nobatch'")
    proc = run_cli(["batch", "list", "--json"], home)
    assert proc.returncode == 0 and json.loads(proc.stdout) == []
