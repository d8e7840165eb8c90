"""``neurodesk batch`` end to end: a generated BIDS dataset converted by the real dcm2niix image.

Six subjects: five with a DICOM series, one (sub-06) with a broken file, so one task fails
while the others finish. Each executor (local pool, the real single-node SLURM of
tests/integration/slurm.py) must leave a provenance record per task whose hashes match the
files, skip complete tasks on a re-run, and re-run only the failed ones after a fix.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nibabel as nib
import pytest

from neurodesk.demo.dicom import SeriesGeometry, write_series
from neurodesk.store import ImageRecord
from tests.conftest import assert_one_line_error, run_cli
from tests.integration.slurm import SlurmCluster, free_port

pytestmark = pytest.mark.integration

SUBJECTS = ["01", "02", "03", "04", "05", "06"]
BROKEN = "06"
GEOMETRY = SeriesGeometry(columns=32, rows=24, slices=6)
COMMAND = [
    "--",
    "dcm2niix",
    "-o",
    "{output_dir}",
    "-f",
    "sub-{subject}_ses-{session}_T1w",
    "{input}/dicom",
]


def make_dataset(root: Path) -> Path:
    """sourcedata/sub-XX/ses-01/dicom for six subjects; sub-06 holds a file that is no DICOM."""
    source = root / "sourcedata"
    for subject in SUBJECTS:
        dicom = source / f"sub-{subject}" / "ses-01" / "dicom"
        if subject == BROKEN:
            dicom.mkdir(parents=True)
            (dicom / "broken.dcm").write_bytes(b"this is not a DICOM file")
        else:
            write_series(dicom, GEOMETRY)
    return source


def repair(source: Path) -> None:
    dicom = source / f"sub-{BROKEN}" / "ses-01" / "dicom"
    shutil.rmtree(dicom)
    write_series(dicom, GEOMETRY)


def batch_dir(proc: subprocess.CompletedProcess[str]) -> Path:
    match = re.search(r"^batch (\S+): (/\S+)$", proc.stderr, re.MULTILINE)
    assert match, proc.stderr
    return Path(match.group(2))


def records(root: Path) -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted(root.glob("tasks/*/record.json")):
        data = json.loads(path.read_text())
        found[data["label"]] = data
    return found


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def check_records(
    root: Path, source: Path, out: Path, image: ImageRecord, scheduler: str, broken: bool
) -> dict[str, dict[str, Any]]:
    """Every task's record says what ran, on what, with which result, and its hashes hold."""
    found = records(root)
    assert sorted(found) == [f"sub-{s}_ses-01" for s in SUBJECTS]
    bwrap_version = subprocess.run(["bwrap", "--version"], capture_output=True, text=True).stdout
    for subject in SUBJECTS:
        record = found[f"sub-{subject}_ses-01"]
        failed = broken and subject == BROKEN
        assert record["image"]["digest"] == image.digest
        assert (record["image"]["name"], record["image"]["version"]) == (image.name, image.version)
        assert record["runtime"]["name"] == "bwrap"
        assert record["runtime"]["version"] in bwrap_version
        assert record["runtime"]["argv"][0].endswith("bwrap")
        task_out = out / f"sub-{subject}" / "ses-01"
        assert record["argv"] == [
            "dcm2niix",
            "-o",
            str(task_out),
            "-f",
            f"sub-{subject}_ses-01_T1w",
            str(source / f"sub-{subject}" / "ses-01" / "dicom"),
        ]
        assert record["env"]["PATH"] and record["env"]["BATCH_TEST"] == "yes"
        assert "SLURM_CONF" not in record["env"]  # a clean environment, plus what was asked
        assert record["host"] == socket.gethostname()
        assert record["start"] <= record["end"]
        assert record["scheduler"]["name"] == scheduler
        if scheduler == "slurm":
            assert record["scheduler"]["job_id"] and record["scheduler"]["array_task_id"]
        dicoms = sorted((source / f"sub-{subject}" / "ses-01" / "dicom").iterdir())
        assert sorted(record["inputs"]) == [str(p) for p in dicoms]
        assert all(sha256(Path(p)) == h for p, h in record["inputs"].items())
        assert Path(record["log"]).is_file()
        if failed:
            assert record["exit_code"] != 0
            assert record["outputs"] == {}
            continue
        assert record["exit_code"] == 0
        nifti = task_out / f"sub-{subject}_ses-01_T1w.nii"
        assert sorted(record["outputs"]) == [str(nifti.with_suffix(".json")), str(nifti)]
        assert all(sha256(Path(p)) == h for p, h in record["outputs"].items())
        assert nib.load(nifti).shape == (GEOMETRY.columns, GEOMETRY.rows, GEOMETRY.slices)
    return found


def test_local_batch(dcm2niix_image: ImageRecord, nd_home: Path, tmp_path: Path) -> None:
    source = make_dataset(tmp_path / "ds")
    out = tmp_path / "ds" / "derivatives" / "dcm2niix"
    args = ["batch", "dcm2niix", "--bids", str(source), "--output", str(out), "--jobs", "2"]
    args += ["--env", "BATCH_TEST=yes", *COMMAND]

    proc = run_cli(args, nd_home)
    assert proc.returncode == 1, proc.stderr
    root = batch_dir(proc)
    assert "5 done, 1 failed" in proc.stderr
    assert f"sub-{BROKEN}_ses-01: exit" in proc.stderr
    assert str(root / "tasks" / "0005" / "log.txt") in proc.stderr  # failures name their log
    first = check_records(root, source, out, dcm2niix_image, "local", broken=True)

    # the same command again: complete tasks are skipped, the failed one runs again
    proc = run_cli(args, nd_home)
    assert proc.returncode == 1 and "5 of 6 tasks already complete" in proc.stderr, proc.stderr
    again = records(root)
    assert again["sub-01_ses-01"]["start"] == first["sub-01_ses-01"]["start"]
    assert again[f"sub-{BROKEN}_ses-01"]["start"] != first[f"sub-{BROKEN}_ses-01"]["start"]

    # an output that changed since its record makes that task run again
    nifti = out / "sub-02" / "ses-01" / "sub-02_ses-01_T1w.json"
    nifti.write_text(nifti.read_text() + " ")
    proc = run_cli(args, nd_home)
    assert "4 of 6 tasks already complete" in proc.stderr, proc.stderr
    assert records(root)["sub-02_ses-01"]["start"] != first["sub-02_ses-01"]["start"]

    repair(source)
    proc = run_cli(["batch", "resubmit", root.name, "--failed"], nd_home)
    assert proc.returncode == 0, proc.stderr
    assert "resubmitting 1 task(s): sub-06_ses-01" in proc.stderr and "6 done" in proc.stderr
    check_records(root, source, out, dcm2niix_image, "local", broken=False)

    proc = run_cli(
        ["batch", "summary", root.name, "--bids-derivative", str(out), "--json"], nd_home
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["counts"] == {"done": 6} and summary["failures"] == []
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    (entry,) = description["GeneratedBy"]
    assert entry["Name"] == "dcm2niix" and entry["Version"] == dcm2niix_image.version
    assert (
        entry["Container"]["Tag"] == f"dcm2niix_{dcm2niix_image.version}:{dcm2niix_image.builddate}"
    )


def test_slurm_batch(
    dcm2niix_image: ImageRecord, nd_home: Path, slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    source = make_dataset(tmp_path / "ds")
    out = tmp_path / "ds" / "derivatives" / "dcm2niix"
    args = ["batch", "dcm2niix", "--bids", str(source), "--output", str(out), "--executor"]
    args += ["slurm", "--cpus", "1", "--mem", "200M", "--time", "5", "--partition", "debug"]
    args += ["--jobs", "2", "--wait"]
    args += ["--env", "BATCH_TEST=yes", *COMMAND]
    env = slurm_cluster.env

    proc = run_cli(args, nd_home, env=env, timeout=180)
    assert proc.returncode == 1, proc.stderr
    assert "submitted 6 task(s) as SLURM job array" in proc.stderr
    assert "5 done, 1 failed" in proc.stderr
    root = batch_dir(proc)
    found = check_records(root, source, out, dcm2niix_image, "slurm", broken=True)
    # the tasks ran on the hot path: from their plans, without the neurodesk package
    assert "jobs/hotpath.py" in (root / "slurm" / "submit-1.sh").read_text()
    assert len(list(root.glob("tasks/*/plan.json"))) == len(SUBJECTS)
    for out_file in root.glob("tasks/*/slurm-*.out"):  # the node's environment matched
        assert "taking the full path" not in out_file.read_text()
    job = found["sub-01_ses-01"]["scheduler"]["job_id"]
    assert slurm_cluster.states(job) == {
        f"{job}_{i}": "FAILED" if i == 5 else "COMPLETED" for i in range(6)
    }

    status = json.loads(run_cli(["batch", "status", root.name, "--json"], nd_home, env=env).stdout)
    assert status["counts"] == {"done": 5, "failed": 1}
    logs = run_cli(["batch", "logs", root.name, "--failed"], nd_home, env=env)
    assert "sub-06_ses-01 (failed)" in logs.stdout and "DICOM" in logs.stdout

    repair(source)
    proc = run_cli(["batch", "resubmit", root.name, "--failed", "--wait"], nd_home, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "submitted 1 task(s)" in proc.stderr and "6 done" in proc.stderr
    submissions = json.loads((root / "slurm" / "submissions.json").read_text())
    assert [s["indices"] for s in submissions] == [[0, 1, 2, 3, 4, 5], [5]]
    flags = submissions[0]["sbatch_args"]
    for flag in (
        "--array=0-5%2",
        "--cpus-per-task=1",
        "--mem=200M",
        "--time=5",
        "--partition=debug",
    ):
        assert flag in flags, flags
    check_records(root, source, out, dcm2niix_image, "slurm", broken=False)


def test_slurm_cancel(
    dcm2niix_image: ImageRecord, nd_home: Path, slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.txt").write_text(name)
    args = ["batch", "dcm2niix", "--glob", str(tmp_path / "*.txt"), "--executor", "slurm"]
    proc = run_cli([*args, "--", "sleep", "60"], nd_home, env=slurm_cluster.env)
    assert proc.returncode == 0 and "follow with: neurodesk batch status" in proc.stderr
    name = batch_dir(proc).name

    def counts() -> dict[str, int]:
        proc = run_cli(["batch", "status", name, "--json"], nd_home, env=slurm_cluster.env)
        return dict(json.loads(proc.stdout)["counts"])

    root = nd_home / "batches" / name
    # wait until two tasks run their container (one CPU each; the third is pending)
    deadline = time.monotonic() + 60
    while len(list(root.glob("tasks/*/log.txt"))) < 2:
        assert time.monotonic() < deadline, counts()
        time.sleep(0.2)
    proc = run_cli(["batch", "cancel", name], nd_home, env=slurm_cluster.env)
    assert proc.returncode == 0 and "cancelled SLURM job(s)" in proc.stderr, proc.stderr
    while {"pending", "running", "completing"} & set(final := counts()):
        assert time.monotonic() < deadline, final
        time.sleep(0.5)
    # a task stopped while running still leaves its record (exit 128 + SIGTERM); one that
    # never started is "lost"; both are what resubmit --failed runs again
    assert final == {"failed": 2, "lost": 1}, final
    assert [r["exit_code"] for r in records(root).values()] == [143, 143]


def test_unreachable_scheduler(dcm2niix_image: ImageRecord, nd_home: Path, tmp_path: Path) -> None:
    conf = tmp_path / "slurm.conf"
    conf.write_text(
        "ClusterName=nowhere\nSlurmctldHost=localhost(127.0.0.1)\n"
        f"SlurmctldPort={free_port()}\nMessageTimeout=1\nAuthType=auth/munge\n"
        "NodeName=localhost CPUs=1\nPartitionName=debug Nodes=localhost Default=YES\n"
    )
    (tmp_path / "in.txt").write_text("x")
    args = ["batch", "dcm2niix", "--glob", str(tmp_path / "in.txt"), "--executor", "slurm"]
    proc = run_cli([*args, "--", "true"], nd_home, env={"SLURM_CONF": str(conf)})
    assert_one_line_error(proc, "sbatch failed", "Unable to contact slurm controller", "slurmctld")


def test_planned_task_matches_full_path(
    dcm2niix_image: ImageRecord, nd_home: Path, tmp_path: Path
) -> None:
    """A task run from its plan (what a SLURM array task does) leaves the record the full
    path leaves for the same task: same runtime command line, environment, hashes."""
    from neurodesk.jobs import hotpath
    from neurodesk.jobs.batch import define_batch
    from neurodesk.jobs.inputs import from_glob
    from neurodesk.jobs.plan import write_plans
    from neurodesk.jobs.task import run_task

    (tmp_path / "in.txt").write_text("data\n")
    command = ["sh", "-c", "cp {input} {output_dir}/copy.txt && id -un", "--"]
    batch = define_batch(
        dcm2niix_image,
        command,
        from_glob(str(tmp_path / "*.txt")),
        source="glob",
        output_root=tmp_path / "out",
        env={"BATCH_TEST": "yes"},
        batches_root=tmp_path / "batches",
    )
    full = run_task(batch, 0, "local").model_dump()
    assert write_plans(batch, [0])
    assert hotpath.run_task(str(batch.root), 0) == 0
    record = batch.record(0)
    assert record is not None
    planned = record.model_dump()
    assert "neurodesk: removed 1 output(s)" in batch.log_path(0).read_text()

    def fds(argv: list[str]) -> list[str]:
        pairs = zip(["", *argv], argv, strict=False)
        return ["FD" if prev == "--ro-bind-data" else word for prev, word in pairs]

    for item in (full, planned):
        item["runtime"]["argv"] = fds(item["runtime"]["argv"])
        for key in ("start", "end", "duration_s"):
            item.pop(key)
    assert planned == full
    assert planned["exit_code"] == 0 and planned["outputs"]
    assert planned["runtime"]["name"] == "bwrap"


# A task that ends at once for the input "quick"; otherwise it notes that it started and
# waits, and its TERM/INT trap adds a line to a marker (what a tool's own clean-up does) and
# exits: one line, as the signal reaches the program once.
TRAPPING = (
    'if grep -q quick "$1"; then echo converted > "$2/out.txt"; exit 0; fi; '
    'trap \'echo "$0" >> "$2/trapped"; exit 3\' TERM INT; '
    'echo running > "$2/started"; while :; do sleep 0.05; done'
)


def _default_signals() -> None:
    """The child starts with SIGINT/SIGTERM at their defaults, whatever the test runner's
    shell left ignored (the batch must not depend on that, but the test must not either)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def start_cli(args: list[str], home: Path) -> subprocess.Popen[str]:
    """``neurodesk ARGS`` as a user's shell starts it: in a process group of its own."""
    return subprocess.Popen(
        [sys.executable, "-m", "neurodesk", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, NEURODESK_HOME=str(home)),
        preexec_fn=_default_signals,
        process_group=0,
    )


def processes_naming(word: str) -> list[str]:
    """Command lines of the processes whose arguments contain ``word``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:  # ended meanwhile
            continue
        if any(word.encode() in arg for arg in args):
            found.append(b" ".join(args).decode(errors="replace"))
    return found


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_local_batch_stops_on_signal(
    dcm2niix_image: ImageRecord, nd_home: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    """``kill -TERM`` / Ctrl-C of a local batch stops it as a scheduler stops its tasks."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in "abcde":
        (inputs / f"{name}.txt").write_text("quick\n" if name == "a" else "slow\n")
    out = tmp_path / "out"
    args = ["batch", "dcm2niix", "--glob", str(inputs / "*.txt"), "--output", str(out)]
    args += ["--jobs", "2", "--", "sh", "-c", TRAPPING, "{input_stem}", "{input}", "{output_dir}"]
    proc = start_cli(args, nd_home)
    try:
        deadline = time.monotonic() + 120
        # "a" ends at once; "b" and "c" then run (two at a time); "d" and "e" wait their turn
        while not all((out / f"{name}.txt" / "started").is_file() for name in "bc"):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        if sig == signal.SIGINT:  # Ctrl-C: the terminal signals the whole process group
            os.killpg(proc.pid, sig)
        else:  # kill PID
            proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + sig, stderr
    assert "Traceback" not in stderr, stderr
    (line,) = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert f"stopped by {sig.name}: 1 task(s) finished, 2 stopped (exit {128 + sig})" in line
    assert "2 not started" in line and "run the same command again" in line, line

    # the running tasks' own traps ran, with the signal they were sent
    for name in "bc":
        assert (out / f"{name}.txt" / "trapped").read_text() == f"{name}\n"
    root = nd_home / "batches" / re.findall(r"batch (\S+) stopped", line)[0]
    found = records(root)
    assert sorted(found) == ["a.txt", "b.txt", "c.txt"]
    assert [found[f"{name}.txt"]["exit_code"] for name in "abc"] == [0, 128 + sig, 128 + sig]
    for name in "bc":
        task_out = out / f"{name}.txt"
        log = Path(found[f"{name}.txt"]["log"]).read_text()
        assert f"neurodesk: task stopped by signal {int(sig)}" in log
        assert found[f"{name}.txt"]["outputs"] == {
            str(task_out / f): sha256(task_out / f) for f in ("started", "trapped")
        }
    # the finished task's record and outputs are whole
    quick = out / "a.txt" / "out.txt"
    assert found["a.txt"]["outputs"] == {str(quick): sha256(quick)}
    assert quick.read_text() == "converted\n"
    # the tasks that had not started never did: no output, no log, no record
    for name in "de":
        assert not (out / f"{name}.txt").exists()
    assert sorted(p.parent.name for p in root.glob("tasks/*/log.txt")) == ["0000", "0001", "0002"]

    status = run_cli(["batch", "status", root.name, "--json"], nd_home)
    assert json.loads(status.stdout)["counts"] == {"done": 1, "failed": 2, "new": 2}


def test_local_batch_kills_a_task_that_ignores_the_signal(
    dcm2niix_image: ImageRecord, nd_home: Path, tmp_path: Path
) -> None:
    """A program that ignores SIGTERM is killed after the grace time; the batch still ends
    with its record and leaves no process behind."""
    from neurodesk.jobs.hotpath import STOP_GRACE

    (tmp_path / "in.txt").write_text("x\n")
    out = tmp_path / "ignoring-out"
    script = "trap '' TERM; echo running > \"$1/started\"; while :; do sleep 0.05; done"
    args = ["batch", "dcm2niix", "--glob", str(tmp_path / "*.txt"), "--output", str(out)]
    proc = start_cli([*args, "--", "sh", "-c", script, "sh", "{output_dir}"], nd_home)
    try:
        deadline = time.monotonic() + 120
        while not (out / "in.txt" / "started").is_file():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
        took = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, stderr
    assert STOP_GRACE <= took < STOP_GRACE + 20, took
    assert "1 stopped (exit 143), 0 not started" in stderr, stderr
    root = Path(re.findall(r"^batch \S+: (/\S+)$", stderr, re.MULTILINE)[0])
    assert [r["exit_code"] for r in records(root).values()] == [143]
    assert processes_naming(str(out)) == []  # the container's program died with it


def test_planned_binds_decided_on_the_node(
    dcm2niix_image: ImageRecord, nd_home: Path, tmp_path: Path
) -> None:
    """A bind source missing at submission but present when the task runs (a node-local
    scratch directory) is bound; one present at submission but gone on the node is skipped,
    as a wrapper or ``neurodesk exec`` run there would decide."""
    from neurodesk.jobs import hotpath
    from neurodesk.jobs.batch import define_batch
    from neurodesk.jobs.inputs import from_glob
    from neurodesk.jobs.plan import write_plans

    (tmp_path / "in.txt").write_text("data\n")
    scratch, gone = tmp_path / "scratch", tmp_path / "gone"
    gone.mkdir()
    command = ["sh", "-c", "cat /scratch/hello; ls /gone || echo no-gone", "--"]
    batch = define_batch(
        dcm2niix_image,
        command,
        from_glob(str(tmp_path / "*.txt")),
        source="glob",
        output_root=tmp_path / "out",
        binds=(f"{scratch}:/scratch", f"{gone}:/gone"),
        batches_root=tmp_path / "batches",
    )
    assert write_plans(batch, [0])
    # between submission and the run: the node's prolog makes scratch, and "gone" is gone
    scratch.mkdir()
    (scratch / "hello").write_text("from the node\n")
    gone.rmdir()
    # what the SLURM array task runs, as its own process
    task = subprocess.run(
        [sys.executable, "-I", "-S", hotpath.__file__, str(batch.root), "0"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert task.returncode == 0, task.stderr
    assert "taking the full path" not in task.stderr  # it ran from its plan
    log = batch.log_path(0).read_text()
    assert "from the node" in log and "no-gone" in log, log
    record = batch.record(0)
    assert record is not None and record.exit_code == 0
    runtime_argv = record.runtime.argv
    assert any(
        runtime_argv[i : i + 3] == ["--bind", str(scratch), "/scratch"]
        for i in range(len(runtime_argv))
    )
    assert str(gone) not in runtime_argv


def test_slurm_task_binds_a_source_made_on_the_node(
    dcm2niix_image: ImageRecord, nd_home: Path, slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    """On the real SLURM route, a --bind whose source is missing at submission is bound by a
    task that runs once it exists (made here by the array's first task; on a cluster, by a
    prolog or as node-local scratch), still on the planned hot path."""
    for name in ("a", "b"):
        (tmp_path / f"{name}.txt").write_text(name)
    out = tmp_path / "out"
    script = (
        'if [ "$1" = 0 ]; then mkdir "$2/scratch" && echo made-on-the-node > "$2/scratch/hello";'
        " else cat /scratch/hello; fi"
    )
    args = ["batch", "dcm2niix", "--glob", str(tmp_path / "*.txt"), "--output", str(out)]
    args += ["--bind", f"{out / 'scratch'}:/scratch:ro", "--executor", "slurm", "--jobs", "1"]
    args += ["--wait", "--", "sh", "-c", script, "sh", "{task}", "{output_root}"]
    proc = run_cli(args, nd_home, env=slurm_cluster.env, timeout=180)
    assert proc.returncode == 0, proc.stderr
    root = batch_dir(proc)
    assert len(list(root.glob("tasks/*/plan.json"))) == 2
    for out_file in root.glob("tasks/*/slurm-*.out"):  # both ran from their plans
        assert "taking the full path" not in out_file.read_text()
    found = records(root)
    assert "made-on-the-node" in Path(found["b.txt"]["log"]).read_text()
    bound = f"{out / 'scratch'} /scratch"
    assert bound not in " ".join(found["a.txt"]["runtime"]["argv"])  # missing then: skipped
    assert bound in " ".join(found["b.txt"]["runtime"]["argv"])
