"""The local executor: up to N tasks at a time on this machine.

Each task is its own container process (bwrap); the pool only bounds how many run at once, so
its workers are threads that wait on those processes (no Python fork per task, and records are
written as each task ends). A failing task never stops the others.

SIGTERM or SIGINT (``kill``, Ctrl-C) to the batch stops it the way a scheduler stops its tasks:
every running task's program gets the same signal (its traps run), the batch waits for them
(SIGKILL after ``STOP_GRACE`` seconds), each stopped task is recorded with exit 128 + the signal
as a SLURM task is, tasks not started yet never start (they stay "new", so running the batch
again runs them), and :class:`BatchStopped` says so.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from types import FrameType

from neurodesk.errors import NeurodeskError
from neurodesk.jobs.batch import Batch
from neurodesk.jobs.hotpath import STOP_GRACE, STOPPING, Interrupted
from neurodesk.jobs.provenance import TaskRecord
from neurodesk.jobs.task import NotStarted, TaskStop, run_task

OnDone = Callable[[TaskRecord], None]
# How often the pool looks whether a signal asked it to stop.
POLL_SECONDS = 0.1


class BatchStopped(NeurodeskError):
    """The batch got SIGTERM/SIGINT: running tasks were stopped, the rest never started."""

    def __init__(
        self, batch: Batch, signum: int, finished: int, stopped: int, not_started: int
    ) -> None:
        name = signal.Signals(signum).name
        super().__init__(
            f"batch {batch.id} stopped by {name}: {finished} task(s) finished, "
            f"{stopped} stopped (exit {128 + signum}), {not_started} not started",
            hint="run the same command again to run the stopped and not-started tasks",
        )
        self.exit_code = 128 + signum


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) or 1


@contextmanager
def stop_on_signals(stopper: TaskStop) -> Iterator[None]:
    """SIGTERM/SIGINT only note the stop (the pool's loop acts on it); handlers restored after.

    Set even when the batch inherited the signals ignored (started in the background): a
    user's ``kill`` must still stop it and reach its tasks."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread; the caller handles stops
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stopper.signum is None:
            stopper.signum = signum  # acted on by the pool's loop, outside the handler

    saved = {sig: signal.signal(sig, handler) for sig in STOPPING}
    try:
        yield
    finally:
        for sig, previous in saved.items():
            signal.signal(sig, previous)


def run_local(
    batch: Batch, indices: Sequence[int], jobs: int, on_done: OnDone | None = None
) -> list[TaskRecord]:
    """Run the tasks ``indices`` with ``jobs`` at a time; records in completion order.

    Raises :class:`BatchStopped` (after every running task ended and left its record) when the
    batch got SIGTERM or SIGINT.
    """
    batch.image  # noqa: B018 -- resolve once, before any worker starts: a missing image is one error
    records: list[TaskRecord] = []
    stopper = TaskStop()

    def finished(future: Future[TaskRecord]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        record = future.result()
        records.append(record)
        if on_done is not None:
            on_done(record)

    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="task")
    futures: list[Future[TaskRecord]] = []
    with stop_on_signals(stopper):
        try:
            for index in indices:
                future = pool.submit(run_task, batch, index, "local", stopper)
                future.add_done_callback(finished)
                futures.append(future)
            pending: set[Future[TaskRecord]] = set(futures)
            while pending and stopper.signum is None:
                done, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_EXCEPTION)
                for future in done:
                    error = future.exception()
                    if error is not None and not isinstance(error, NotStarted | Interrupted):
                        raise error  # an error of ours, not the tool's: stop and report it
            if stopper.signum is not None:
                raise stopped(batch, stopper, futures)
        finally:
            # on an error, tasks not yet started never start; running ones end and still
            # leave their records
            pool.shutdown(wait=True, cancel_futures=True)
    return records


def stopped(batch: Batch, stopper: TaskStop, futures: list[Future[TaskRecord]]) -> BatchStopped:
    """Stop every running task, wait for them (SIGKILL after the grace time), and say what
    became of the batch's tasks."""
    signum = stopper.signum
    assert signum is not None
    for future in futures:
        future.cancel()  # queued, not started: they never start
    stopper.request(signum)
    _, running = wait(futures, timeout=STOP_GRACE)
    if running:
        stopper.kill()
        wait(futures)
    finished = interrupted = 0
    for future in futures:
        if future.cancelled():
            continue
        error = future.exception()
        if error is None:
            finished += 1
        elif isinstance(error, Interrupted):
            interrupted += 1
    return BatchStopped(batch, signum, finished, interrupted, len(futures) - finished - interrupted)
