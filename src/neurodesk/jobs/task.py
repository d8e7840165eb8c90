"""Running one task of a batch in its container and writing its provenance record.

The same function serves the local pool (called in a worker thread) and a SLURM array task
(``neurodesk batch run-task DIR INDEX`` on the compute node, which needs only the shared
filesystem: the batch directory, the store and the data).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import BinaryIO

from neurodesk.jobs.batch import Batch
from neurodesk.jobs.hotpath import (
    SETUP_RETRIES,
    STOP_GRACE,
    Interrupted,
    now,
    raise_on_signals,
    setup_failed,
)
from neurodesk.jobs.inputs import check_output_root
from neurodesk.jobs.provenance import RuntimeInfo, SchedulerInfo, TaskRecord, hash_tree
from neurodesk.runtime.execute import spawn, stop
from neurodesk.runtime.spec import Bind, RunSpec, build_runspec


class NotStarted(Exception):
    """The batch was asked to stop before this task started: it left nothing behind."""


class TaskStop:
    """How the local pool stops its running tasks when the batch gets SIGTERM or SIGINT.

    Each task registers its runtime process while it runs; :meth:`request` sends the signal to
    every one of them (the runtime's forwarder passes it to the program, whose traps run), and
    a task that was signalled records ``128 + signal`` as a SLURM task stopped by the scheduler
    does. Tasks that have not started by then do not start (:class:`NotStarted`).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self._signalled: set[subprocess.Popen[bytes]] = set()
        self.signum: int | None = None

    def check(self) -> None:
        """Raise :class:`NotStarted` once a stop was requested."""
        if self.signum is not None:
            raise NotStarted(self.signum)

    def request(self, signum: int) -> None:
        """Stop: ``signum`` to every running task, none started from now on."""
        with self._lock:
            if self.signum is None:
                self.signum = signum
            for proc in self._running - self._signalled:
                self._send(proc, signum)

    def kill(self) -> None:
        """SIGKILL to the tasks still running (after the grace time)."""
        with self._lock:
            for proc in self._running:
                self._send(proc, signal.SIGKILL)

    def started(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._running.add(proc)
            if self.signum is not None:  # the stop came while this task was starting
                self._send(proc, self.signum)

    def ended(self, proc: subprocess.Popen[bytes]) -> int | None:
        """Forget ``proc``; the signal it was sent, if it was stopped."""
        with self._lock:
            self._running.discard(proc)
            return self.signum if proc in self._signalled else None

    def _send(self, proc: subprocess.Popen[bytes], signum: int) -> None:
        self._signalled.add(proc)
        proc.send_signal(signum)  # a no-op when it has ended already


def task_binds(batch: Batch, index: int) -> list[Bind]:
    """The user's --bind options, the output root writable, the inputs read-only.

    Inputs come last: the RunSpec mounts them over every broader read-write bind ($HOME, /tmp,
    /var/tmp, a --bind), so source data stays read-only wherever it lies. An output root inside
    an input is refused.
    """
    task = batch.spec.tasks[index]
    inputs = [task.input] + ([batch.spec.bids_dir] if batch.spec.bids_dir else [])
    root = batch.spec.output_root
    check_output_root(root, [task.input])  # a BIDS output root may lie in the dataset
    binds = [Bind.parse(b) for b in batch.spec.binds]
    binds.append(Bind(root, root))
    binds += [Bind(i, i, readonly=True) for i in inputs]
    return binds


def task_runspec(batch: Batch, index: int) -> RunSpec:
    """The RunSpec of task ``index`` (its output directory created: the task runs there)."""
    task = batch.spec.tasks[index]
    out = Path(task.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    return build_runspec(
        batch.image,
        task.argv,
        cwd=str(out),
        binds=task_binds(batch, index),
        env=batch.spec.env,
        gpu=batch.spec.gpu,
        writable=[batch.spec.output_root],
    )


def remove_previous_outputs(batch: Batch, index: int) -> int:
    """Delete the files the task's previous run wrote (its record lists them).

    A re-run must start from the same state as the first run: many tools refuse to overwrite
    (dcm2niix writes ``name a.nii`` next to the old file), which would mix two runs' outputs.
    Only files the record names are touched, never anything else in the output directory.
    """
    previous = batch.record(index)
    count = 0
    for name in previous.outputs if previous else ():
        path = Path(name)
        if path.is_file() and path.is_relative_to(batch.spec.tasks[index].output_dir):
            path.unlink()
            count += 1
    return count


def scheduler_info(executor: str) -> SchedulerInfo:
    if executor == "slurm":
        return SchedulerInfo(
            name="slurm",
            job_id=os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID"),
            array_task_id=os.environ.get("SLURM_ARRAY_TASK_ID"),
        )
    return SchedulerInfo(name=executor)


def execute(
    spec: RunSpec, log: BinaryIO, stopper: TaskStop | None = None
) -> tuple[int, Interrupted | None, RuntimeInfo]:
    """Run ``spec`` with its output in ``log``; the exit code, the signal if stopped, and the
    runtime that actually ran. With ``stopper`` (the local pool), the runtime runs in a process
    group of its own, so only the pool signals it (a terminal's Ctrl-C reaches it once)."""
    try:
        proc, launch = spawn(spec, stdout=log, process_group=0 if stopper else None)
    except OSError as exc:  # the runtime vanished between choosing it and starting it
        log.write(f"neurodesk: cannot start the runtime: {exc}\n".encode())
        return 127, None, RuntimeInfo(name="none", version="", argv=[])
    info = RuntimeInfo(name=launch.runtime, version=launch.version, argv=launch.runtime_argv)
    if stopper is not None:
        stopper.started(proc)
        code = proc.wait()
        signum = stopper.ended(proc)
        if signum is not None:
            log.write(f"\nneurodesk: task stopped by signal {signum}\n".encode())
            return 128 + signum, Interrupted(signum), info
        return (128 - code if code < 0 else code), None, info
    try:
        code = proc.wait()
        return (128 - code if code < 0 else code), None, info
    except Interrupted as exc:
        # the signal reaches the program through the runtime (its traps run), then SIGKILL
        stop(proc, STOP_GRACE, sig=exc.signum)
        log.write(f"\nneurodesk: task stopped by signal {exc.signum}\n".encode())
        return 128 + exc.signum, exc, info


def run_task(
    batch: Batch, index: int, executor: str = "local", stopper: TaskStop | None = None
) -> TaskRecord:
    """Run task ``index`` and write its record; returns the record (exit code inside).

    With ``stopper`` (the local pool): :class:`NotStarted` when the batch is stopping before
    the task touched anything; a task stopped while running writes its record (exit 128 + the
    signal) and raises :class:`Interrupted`.
    """
    if stopper is not None:
        stopper.check()
    task = batch.spec.tasks[index]
    out = Path(task.output_dir)
    spec = task_runspec(batch, index)
    removed = remove_previous_outputs(batch, index)
    log_path = batch.log_path(index)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    inputs = hash_tree(Path(task.input))
    start, started = now(), time.monotonic()
    with log_path.open("w+b") as log:
        if removed:
            log.write(f"neurodesk: removed {removed} output(s) of the previous run\n".encode())
        for attempt in range(1 + SETUP_RETRIES):
            log.flush()
            mark = log.tell()
            exit_code, interrupted, runtime = execute(spec, log, stopper)
            if interrupted or not setup_failed(log, mark, exit_code) or attempt == SETUP_RETRIES:
                break
            if stopper is not None and stopper.signum is not None:
                break  # the batch is stopping: no retry
            # the command never started: bwrap lost a race with a mount changing under a
            # bound directory (e.g. a build's overlay under /tmp); that is worth a retry
            log.write(b"neurodesk: the runtime failed before the command started; retrying\n")
            time.sleep(0.2 * (attempt + 1))
    end = now()
    record = TaskRecord(
        batch_id=batch.id,
        task=index,
        label=task.label,
        image=batch.spec.image,
        runtime=runtime,
        argv=task.argv,
        env=spec.env,
        cwd=spec.cwd,
        inputs=inputs,
        outputs=hash_tree(out),
        start=start,
        end=end,
        duration_s=round(time.monotonic() - started, 3),
        exit_code=exit_code,
        host=socket.gethostname(),
        scheduler=scheduler_info(executor),
        log=str(log_path),
    )
    record.save(batch.record_path(index))
    if interrupted is not None:
        raise interrupted
    return record


def run_one(batch_dir: Path, index: int) -> int:
    """What one SLURM array task does: run task ``index`` of the batch; its exit code."""
    from neurodesk.errors import ValidationError
    from neurodesk.jobs.batch import load_batch

    batch = load_batch(str(batch_dir))
    if not 0 <= index < len(batch.spec.tasks):
        raise ValidationError(f"batch {batch.id} has no task {index}", [])
    raise_on_signals()
    executor = "slurm" if "SLURM_JOB_ID" in os.environ else "local"
    try:
        return run_task(batch, index, executor).exit_code
    except Interrupted as exc:  # scancel or the time limit: the record is written already
        return 128 + exc.signum
