"""The local executor: up to N tasks at a time on this machine.

Each task is its own container process (bwrap); the pool only bounds how many run at once, so
its workers are threads that wait on those processes (no Python fork per task, and records are
written as each task ends). A failing task never stops the others.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait

from neurodesk.jobs.batch import Batch
from neurodesk.jobs.provenance import TaskRecord
from neurodesk.jobs.task import run_task

OnDone = Callable[[TaskRecord], None]


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) or 1


def run_local(
    batch: Batch, indices: Sequence[int], jobs: int, on_done: OnDone | None = None
) -> list[TaskRecord]:
    """Run the tasks ``indices`` with ``jobs`` at a time; records in completion order."""
    batch.image  # noqa: B018 -- resolve once, before any worker starts: a missing image is one error
    records: list[TaskRecord] = []

    def finished(future: Future[TaskRecord]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        record = future.result()
        records.append(record)
        if on_done is not None:
            on_done(record)

    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="task")
    try:
        futures = []
        for index in indices:
            future = pool.submit(run_task, batch, index, "local")
            future.add_done_callback(finished)
            futures.append(future)
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in done:
            error = future.exception()
            if error is not None:  # an error of ours, not the tool's: stop and report it
                raise error
    finally:
        # on an error or Ctrl-C, tasks not yet started never start; running ones end
        # (their container got the same SIGINT) and still leave their records
        pool.shutdown(wait=True, cancel_futures=True)
    return records
