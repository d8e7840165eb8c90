"""The SLURM executor: one ``sbatch`` job array per submission, task index = array index.

Each array task runs ``python -I -S .../jobs/hotpath.py <batch dir> $SLURM_ARRAY_TASK_ID``
from the task's plan written at submission (:mod:`neurodesk.jobs.plan`), or, for runtimes
without plans, ``python -m neurodesk.jobs run-task``; a compute node needs only the shared
filesystem (batch directory, store, data) and the runtime.
Without slurmdbd there is no ``sacct``: a task's outcome is its provenance record, and the
queue (``squeue``) says what is still pending or running.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from pydantic import AliasChoices, BaseModel, Field

from neurodesk import __version__
from neurodesk.errors import MissingToolError, NeurodeskError
from neurodesk.jobs import hotpath
from neurodesk.jobs.batch import Batch
from neurodesk.paths import Paths
from neurodesk.store.atomic import write_text

SUBMIT_TIMEOUT = 120


class SchedulerError(NeurodeskError):
    """The scheduler could not be reached or refused the request."""

    exit_code = 6


class SlurmOptions(BaseModel):
    """The CLI's scheduling flags (other keys are ignored); ``jobs`` is the array throttle."""

    cpus: int | None = None
    mem: str | None = None
    time: str | None = Field(None, validation_alias=AliasChoices("time", "time_limit"))
    gpus: str | None = None
    partition: str | None = None
    account: str | None = None
    max_running: int | None = Field(None, validation_alias=AliasChoices("max_running", "jobs"))

    def sbatch_args(self) -> list[str]:
        args = []
        if self.cpus:
            args.append(f"--cpus-per-task={self.cpus}")
        for flag, value in (
            ("--mem", self.mem),
            ("--time", self.time),
            ("--gpus", self.gpus),
            ("--partition", self.partition),
            ("--account", self.account),
        ):
            if value:
                args.append(f"{flag}={value}")
        return args


class Submission(BaseModel):
    job_id: str
    indices: list[int]
    submitted: str
    script: str
    sbatch_args: list[str]


def array_spec(indices: Sequence[int]) -> str:
    """[0, 1, 2, 5, 7, 8] → "0-2,5,7-8"."""
    parts: list[str] = []
    ordered = sorted(set(indices))
    start = prev = ordered[0]
    for index in [*ordered[1:], None]:
        if index is not None and index == prev + 1:
            prev = index
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if index is not None:
            start = prev = index
    return ",".join(parts)


def slurm_client(program: str) -> str:
    found = shutil.which(program)
    if found is None:
        raise MissingToolError(
            f"'{program}' is not installed: no SLURM client on this machine",
            hint="run on a login node of your cluster (or install slurm-client), "
            "or use --executor local",
        )
    conf = os.environ.get("SLURM_CONF")
    if conf and not Path(conf).is_file():
        # the clients would retry for a minute before failing
        raise SchedulerError(
            f"SLURM_CONF points to {conf}, which does not exist",
            hint="set SLURM_CONF to your cluster's slurm.conf or unset it",
        )
    return found


def _client(argv: list[str], what: str) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=SUBMIT_TIMEOUT
        )
    except subprocess.TimeoutExpired as exc:
        raise SchedulerError(
            f"{what}: {Path(argv[0]).name} did not answer in {SUBMIT_TIMEOUT} s",
            hint="is slurmctld reachable from here? check SLURM_CONF",
        ) from exc
    return proc


def _first_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    text = (errors or lines or ["no message"])[-1]
    return text.removeprefix("sbatch: ").removeprefix("error: ")


def next_script(batch: Batch) -> Path:
    """Where the next submission's script goes: ``slurm/submit-<N>.sh``."""
    scripts = batch.root / "slurm"
    count = len(list(scripts.glob("submit-*.sh"))) if scripts.is_dir() else 0
    return scripts / f"submit-{count + 1}.sh"


def script_text(batch: Batch, path: Path, sbatch_args: list[str], planned: bool) -> str:
    """The array's script. With ``planned`` (every task has its plan), a task is the hot path
    run as a file by an isolated interpreter without site packages; otherwise the full path."""
    home = Paths.from_env().home
    if planned:
        command = f"{shlex.quote(sys.executable)} -I -S {shlex.quote(hotpath.__file__)}"
    else:
        command = f"{shlex.quote(sys.executable)} -m neurodesk.jobs run-task"
    return (
        "#!/bin/sh\n"
        f"# neurodesk {__version__}: one array task = one task of batch {batch.id}\n"
        f"# submitted as: sbatch {shlex.join(sbatch_args)} {path.name}\n"
        f"export NEURODESK_HOME={shlex.quote(str(home))}\n"
        f'exec {command} {shlex.quote(str(batch.root))} "$SLURM_ARRAY_TASK_ID"\n'
    )


def sbatch_args(batch: Batch, indices: Sequence[int], options: SlurmOptions) -> list[str]:
    """sbatch's options for the array of ``indices`` (before the script's path)."""
    array = array_spec(indices)
    if options.max_running:
        array += f"%{options.max_running}"
    return [
        "--parsable",
        f"--job-name=nd-{batch.id}",
        f"--array={array}",
        f"--output={batch.root}/tasks/%{batch.pad}a/slurm-%A_%a.out",
        f"--chdir={batch.root}",
        *options.sbatch_args(),
    ]


def submit(batch: Batch, indices: Sequence[int], options: SlurmOptions) -> Submission:
    """Submit ``indices`` of ``batch`` as one job array; returns the recorded submission."""
    sbatch = slurm_client("sbatch")
    args = sbatch_args(batch, indices, options)
    from neurodesk.jobs.plan import remove_plans, write_plans

    script = next_script(batch)
    write_text(script, script_text(batch, script, args, write_plans(batch, indices)), mode=0o755)
    proc = _client([sbatch, *args, str(script)], "submitting")
    if proc.returncode != 0:
        script.unlink(missing_ok=True)
        remove_plans(batch, indices)
        raise SchedulerError(
            f"sbatch failed: {_first_error(proc.stderr)}",
            hint="check that slurmctld is reachable (SLURM_CONF, 'sinfo') and the "
            "partition/account flags; or use --executor local",
        )
    job_id = proc.stdout.strip().split(";")[0]
    submission = Submission(
        job_id=job_id,
        indices=sorted(indices),
        submitted=datetime.now(UTC).isoformat(timespec="seconds"),
        script=str(script),
        sbatch_args=args,
    )
    save_submissions(batch, [*submissions(batch), submission])
    return submission


def submissions(batch: Batch) -> list[Submission]:
    path = batch.root / "slurm" / "submissions.json"
    if not path.is_file():
        return []
    return [Submission.model_validate(item) for item in json.loads(path.read_text())]


def save_submissions(batch: Batch, items: list[Submission]) -> None:
    write_text(
        batch.root / "slurm" / "submissions.json",
        json.dumps([s.model_dump() for s in items], indent=2) + "\n",
    )


class Queued(BaseModel):
    job_id: str  # the array job id
    state: str  # PENDING, RUNNING, COMPLETING, ...


def queued(batch: Batch) -> dict[int, Queued]:
    """This batch's tasks still known to the queue, by task index."""
    jobs = submissions(batch)
    if not jobs:
        return {}
    squeue = slurm_client("squeue")
    ids = ",".join(s.job_id for s in jobs)
    # -r: one line per array task, also for pending ones; %A array job id, %K task index
    proc = _client([squeue, "-h", "-r", "-j", ids, "-o", "%A %K %T"], "reading the queue")
    if proc.returncode != 0:
        if "Invalid job id" in proc.stderr:  # every job has left slurmctld's memory
            return {}
        raise SchedulerError(
            f"squeue failed: {_first_error(proc.stderr)}", hint="check SLURM_CONF and 'sinfo'"
        )
    states: dict[int, Queued] = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit():
            states[int(parts[1])] = Queued(job_id=parts[0], state=parts[2])
    return states


def cancel(batch: Batch) -> list[str]:
    """Cancel this batch's jobs that are still queued or running; returns their ids."""
    jobs = sorted({q.job_id for q in queued(batch).values()})
    if not jobs:
        return []
    proc = _client([slurm_client("scancel"), *jobs], "cancelling")
    if proc.returncode != 0:
        raise SchedulerError(
            f"scancel failed: {_first_error(proc.stderr)}", hint="check SLURM_CONF and 'sinfo'"
        )
    return jobs
