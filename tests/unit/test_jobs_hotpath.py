"""The SLURM task's hot path (jobs/hotpath.py): a task run from its plan leaves the same
record as the full path, starts without our heavy imports, and keeps every rule of a task run
(previous outputs removed, made-up files handed over as fds, log, exit codes, hashes)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from neurodesk.jobs import hotpath
from neurodesk.jobs.batch import Batch, BatchSpec, TaskSpec
from neurodesk.jobs.plan import write_plans
from neurodesk.jobs.provenance import (
    ImageInfo,
    RuntimeInfo,
    SchedulerInfo,
    TaskRecord,
)
from tests.conftest import assert_one_line_error

IMAGE = {
    "name": "tool",
    "version": "1.2",
    "builddate": "20260101",
    "id": "tool_1.2_20260101",
    "digest": "sha256:" + "ab" * 32,
    "reference": "",
}
# What the "runtime" does: copies the made-up file it gets as an fd ($0) into the output
# directory ($1), writes to stdout and stderr, exits with $2.
RUNTIME = 'cat "/proc/self/fd/$0" > "$1/copy.txt"; echo out; echo err >&2; exit "$2"'


def make_plan(tmp_path: Path, exit_code: int = 0, index: int = 3) -> dict[str, Any]:
    batch = tmp_path / "batch"
    task_dir = batch / "tasks" / f"{index:04d}"
    task_dir.mkdir(parents=True)
    data = tmp_path / "in"
    data.mkdir(exist_ok=True)
    (data / "a.dcm").write_bytes(b"dicom")
    out = tmp_path / "out" / "sub-01"
    argv = ["/bin/sh", "-c", RUNTIME, "FD", str(out), str(exit_code)]
    plan = {
        "schema_version": hotpath.PLAN_SCHEMA,
        "batch_id": "tool-0123456789",
        "task": index,
        "label": "sub-01",
        "image": IMAGE,
        "argv": ["tool", "-o", str(out)],
        "env": {"PATH": "/usr/bin", "LANG": "C.UTF-8", "NOTE": "naïve\x1b"},
        "cwd": str(out),
        "input": str(data),
        "output_dir": str(out),
        "log": str(task_dir / "log.txt"),
        "record": str(task_dir / "record.json"),
        "runtime": {"name": "fake", "version": "1.0", "argv": ["fake", "FD", "/etc/passwd"]},
        "launch": argv,
        "files": [
            {
                "path": "/etc/passwd",
                "content": "alice:x:1000:1000::/home/alice:/bin/sh\n",
                "positions": [3],
                "runtime_positions": [1],
            }
        ],
        "binds": [],
        "environ": hotpath.environment(
            ["HOME", "TMPDIR", "ND_TEST_UNSET"], ["LC_"], {"TMPDIR": "/tmp"}
        ),
        "environ_prefixes": ["LC_"],
        "environ_defaults": {"TMPDIR": "/tmp"},
    }
    (task_dir / "plan.json").write_text(json.dumps(plan))
    return plan


def test_task_from_plan_leaves_a_valid_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "70")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    plan = make_plan(tmp_path, exit_code=0)
    assert hotpath.run_task(str(tmp_path / "batch"), 3) == 0

    out = Path(plan["output_dir"])
    copy = out / "copy.txt"
    assert copy.read_text() == plan["files"][0]["content"]  # the fd reached the program
    log = Path(plan["log"]).read_text()
    assert "out\n" in log and "err\n" in log
    record = TaskRecord.load(Path(plan["record"]))
    assert record is not None  # the full path's model reads it
    assert record.exit_code == 0 and record.label == "sub-01" and record.task == 3
    assert record.image == ImageInfo(**IMAGE)
    assert record.argv == plan["argv"] and record.env == plan["env"]
    assert record.cwd == plan["cwd"]
    assert record.runtime.name == "fake" and record.runtime.version == "1.0"
    assert record.runtime.argv[0] == "fake" and record.runtime.argv[2] == "/etc/passwd"
    assert record.runtime.argv[1].isdigit()  # this run's fd number, not the placeholder
    assert record.scheduler == SchedulerInfo(name="slurm", job_id="70", array_task_id="3")
    assert record.host == os.uname().nodename
    assert record.start <= record.end and record.duration_s >= 0
    data = Path(plan["input"]) / "a.dcm"
    assert record.inputs == {str(data): "sha256:" + hashlib.sha256(b"dicom").hexdigest()}
    digest = "sha256:" + hashlib.sha256(copy.read_bytes()).hexdigest()
    assert record.outputs == {str(copy): digest}
    # byte for byte what the full path's model writes
    assert Path(plan["record"]).read_text() == record.model_dump_json(indent=2) + "\n"


def test_binds_whose_source_is_missing_here_are_dropped(tmp_path: Path) -> None:
    """The skip-missing-bind rule is decided where the task runs, from the plan's bind list."""
    plan = make_plan(tmp_path)
    here, missing = tmp_path / "here", tmp_path / "missing"
    here.mkdir()
    script = 'cat "/proc/self/fd/$0" > /dev/null; echo "args: $*"'
    binds = ["--bind", str(here), "/p", "--ro-bind", str(missing), "/m", "--bind", str(here), "/q"]
    plan["launch"] = ["/bin/sh", "-c", script, "FD", *binds]
    plan["runtime"]["argv"] = ["fake", "FD", "/etc/passwd", *binds]
    plan["files"][0]["positions"] = [3]
    plan["binds"] = [
        {"source": str(here), "start": 4, "runtime_start": 3, "count": 3},
        {"source": str(missing), "start": 7, "runtime_start": 6, "count": 3},
        {"source": str(here), "start": 10, "runtime_start": 9, "count": 3},
    ]
    Path(plan["log"]).parent.joinpath("plan.json").write_text(json.dumps(plan))
    assert hotpath.run_task(str(tmp_path / "batch"), 3) == 0
    kept = f"--bind {here} /p --bind {here} /q"
    assert f"args: {kept}\n" in Path(plan["log"]).read_text()
    record = TaskRecord.load(Path(plan["record"]))
    assert record is not None
    assert record.runtime.argv[3:] == kept.split()


def test_failure_and_rerun_remove_previous_outputs(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, exit_code=0)
    batch = str(tmp_path / "batch")
    assert hotpath.run_task(batch, 3) == 0
    out = Path(plan["output_dir"])
    stray = out / "mine.txt"  # not the task's: a re-run leaves it alone
    stray.write_text("keep")
    plan["launch"][-1] = "5"
    Path(plan["record"]).with_name("plan.json").write_text(json.dumps(plan))
    assert hotpath.run_task(batch, 3) == 5
    log = Path(plan["log"]).read_text()
    assert log.startswith("neurodesk: removed 1 output(s) of the previous run\n")
    record = json.loads(Path(plan["record"]).read_text())
    assert record["exit_code"] == 5 and stray.read_text() == "keep"


def test_runtime_gone_is_exit_127(tmp_path: Path) -> None:
    plan = make_plan(tmp_path)
    plan["launch"][0] = str(tmp_path / "no-such-runtime")
    Path(plan["record"]).with_name("plan.json").write_text(json.dumps(plan))
    assert hotpath.run_task(str(tmp_path / "batch"), 3) == 127
    record = json.loads(Path(plan["record"]).read_text())
    assert record["runtime"] == {"name": "none", "version": "", "argv": []}
    assert "cannot start the runtime" in Path(plan["log"]).read_text()


def test_no_plan_or_unknown_plan(tmp_path: Path) -> None:
    assert hotpath.run_task(str(tmp_path), 0) is None
    plan = make_plan(tmp_path)
    plan["schema_version"] = "neurodesk.task-plan/99"
    Path(plan["record"]).with_name("plan.json").write_text(json.dumps(plan))
    assert hotpath.run_task(str(tmp_path / "batch"), 3) is None
    # the script then takes the full path, which reads the batch (none here)
    script = [sys.executable, "-I", "-S", hotpath.__file__, str(tmp_path / "batch"), "3"]
    env = dict(os.environ, NEURODESK_HOME=str(tmp_path / "home"))
    proc = subprocess.run(script, capture_output=True, text=True, check=False, env=env)
    assert_one_line_error(proc, "no batch")


@pytest.mark.parametrize(
    "change", [{"TMPDIR": "/scratch/job7"}, {"LC_ALL": "de_DE.UTF-8"}, {"ND_TEST_UNSET": "1"}]
)
def test_another_environment_takes_the_full_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: dict[str, str]
) -> None:
    """A node whose TMPDIR, locale, bind paths... differ from the submission's: the plan does
    not hold there, the task is left to the full path (which reads the node's environment)."""
    plan = make_plan(tmp_path)
    for key, value in change.items():
        monkeypatch.setenv(key, value)
    assert hotpath.run_task(str(tmp_path / "batch"), 3, say=False) is None
    assert not Path(plan["log"]).exists()  # nothing ran


def test_unset_tmpdir_is_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """slurmstepd sets TMPDIR=/tmp where the login shell had none: the same run."""
    monkeypatch.delenv("TMPDIR", raising=False)
    make_plan(tmp_path)
    monkeypatch.setenv("TMPDIR", "/tmp")
    assert hotpath.run_task(str(tmp_path / "batch"), 3) == 0


def test_task_directory_width(tmp_path: Path) -> None:
    (tmp_path / "tasks" / "0007").mkdir(parents=True)
    (tmp_path / "tasks" / "12345").mkdir()
    assert hotpath.task_dir(str(tmp_path), 7) == str(tmp_path / "tasks" / "0007")
    assert hotpath.task_dir(str(tmp_path), 12345) == str(tmp_path / "tasks" / "12345")
    assert hotpath.task_dir(str(tmp_path), 8) is None


def test_runs_without_our_heavy_imports(tmp_path: Path) -> None:
    """As the submitted script runs it: an isolated interpreter, no site packages."""
    plan = make_plan(tmp_path)
    script = [sys.executable, "-I", "-S", "-X", "importtime", hotpath.__file__]
    proc = subprocess.run(
        [*script, str(tmp_path / "batch"), "3"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    heavy = {"neurodesk", "pydantic", "typing", "subprocess", "pathlib", "tempfile"}
    assert "hashlib" in imported and not heavy & {m.split(".")[0] for m in imported}
    assert json.loads(Path(plan["record"]).read_text())["exit_code"] == 0


@pytest.mark.parametrize(
    "path", ["/a/b", "/a/b/", "/a//b/./c", "//x/y", "///x", "a/./b", "/a/../b", ".", "/"]
)
def test_paths_normalised_like_pathlib(path: str) -> None:
    assert hotpath.normal_path(path) == str(Path(path))


def test_within() -> None:
    assert hotpath.within("/out/sub-01/a.nii", "/out/sub-01/")
    assert hotpath.within("/out/sub-01", "/out/sub-01")
    assert not hotpath.within("/out/sub-010/a.nii", "/out/sub-01")
    assert not hotpath.within("/elsewhere/a.nii", "/out")


def test_record_layout_matches_pydantic(tmp_path: Path) -> None:
    record = TaskRecord(
        batch_id="b",
        task=0,
        label="sub-01 ünïcode",
        image=ImageInfo(**IMAGE),
        runtime=RuntimeInfo(name="bwrap", version="0.8.0", argv=["bwrap", 'a"b\\c\n\t\x00']),
        argv=["tool", "→"],
        env={},
        cwd="/",
        inputs={},
        outputs={"/o/x": "sha256:00"},
        start="2026-01-01T00:00:00.000+00:00",
        end="2026-01-01T00:00:01.000+00:00",
        duration_s=1.0,
        exit_code=143,
        host="h",
        scheduler=SchedulerInfo(name="local"),
        log="/log",
    )
    path = tmp_path / "record.json"
    hotpath.write_json(str(path), record.model_dump())
    assert path.read_text() == record.model_dump_json(indent=2) + "\n"
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]  # no temporary left


def test_sigterm_stops_the_program_and_leaves_a_record(tmp_path: Path) -> None:
    """scancel or a time limit: the program gets the signal, the record says 128 + 15."""
    plan = make_plan(tmp_path)
    marker = tmp_path / "stopped"
    plan["launch"] = [
        "/bin/sh",
        "-c",
        f"trap 'touch {marker}; exit 143' TERM; echo up; sleep 30 & wait",
    ]
    plan["files"] = []
    Path(plan["record"]).with_name("plan.json").write_text(json.dumps(plan))
    script = [sys.executable, "-I", "-S", hotpath.__file__, str(tmp_path / "batch"), "3"]
    proc = subprocess.Popen(script)
    log = Path(plan["log"])
    deadline = time.monotonic() + 20
    while not (log.is_file() and "up" in log.read_text()):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 143
    assert marker.is_file()  # the program's trap ran
    record = json.loads(Path(plan["record"]).read_text())
    assert record["exit_code"] == 143
    assert log.read_text().endswith("neurodesk: task stopped by signal 15\n")


def test_module_entry_without_a_plan_takes_the_full_path(tmp_path: Path, home: Path) -> None:
    """``python -m neurodesk.jobs run-task`` (arrays without plans) still reads the batch."""
    argv = [sys.executable, "-m", "neurodesk.jobs", "run-task", str(tmp_path / "nothing"), "0"]
    env = dict(os.environ, NEURODESK_HOME=str(home))
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    assert_one_line_error(proc, "no batch", "batch list")


def test_no_runtime_or_gpu_at_submission_means_no_plans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A login node without bwrap/apptainer still submits, and a GPU batch is set up on its
    node: those tasks take the full path."""
    spec = BatchSpec(
        id="tool-123",
        created="2026-01-01T00:00:00+00:00",
        image=ImageInfo(**IMAGE),
        command=["tool", "{input}"],
        source="glob /data/*",
        output_root=str(tmp_path / "out"),
        tasks=[TaskSpec(index=0, label="a", input="/data/a", argv=["tool"], output_dir="/o/a")],
    )
    batch = Batch(tmp_path / "batch", spec)
    batch.save()
    stale = batch.task_dir(0) / "plan.json"
    stale.write_text("{}")  # from an earlier submission: must not be used
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("NEURODESK_RUNTIME", raising=False)
    assert write_plans(batch, [0]) is False
    assert not stale.exists()
    monkeypatch.setenv("PATH", os.environ["PATH"] + ":/usr/bin:/bin")
    batch.spec.gpu = True  # devices and driver libraries are found on the GPU node
    assert write_plans(batch, [0]) is False


def test_a_stop_arriving_as_the_runtime_ends_still_stops_cleanly() -> None:
    """scancel signals every process of the job: the program may end, and the runtime be
    waited for, just before the task's own handler runs. Stopping it then must neither fail
    nor signal anything else: a zombie is reaped, a runtime already reaped is left alone."""
    zombie = subprocess.Popen(["true"])
    os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)  # ended, not reaped
    started = time.monotonic()
    hotpath._stop(zombie.pid, signal.SIGTERM)
    assert time.monotonic() - started < hotpath.STOP_GRACE  # no wait for the grace time
    with pytest.raises(ChildProcessError):
        os.waitpid(zombie.pid, os.WNOHANG)  # reaped by _stop
    gone = subprocess.Popen(["true"])
    os.waitpid(gone.pid, 0)
    hotpath._stop(gone.pid, signal.SIGTERM)  # reaped by someone else: nothing to do
    zombie.returncode = gone.returncode = 0  # (reaped outside Popen)
