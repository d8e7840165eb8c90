"""What state each task of a batch is in, from its record and (for SLURM) the queue."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from neurodesk.errors import ValidationError
from neurodesk.jobs import slurm
from neurodesk.jobs.batch import Batch
from neurodesk.jobs.provenance import TaskRecord, is_complete

# done: exit 0 and outputs intact; failed: non-zero exit; stale: exit 0 but outputs changed;
# lost: submitted, no longer queued, no record (cancelled, timed out, node failure);
# pending/running: in the SLURM queue; new: never run.
RERUN_STATES = {"failed", "lost", "stale", "new"}


@dataclass(frozen=True)
class TaskState:
    index: int
    label: str
    state: str
    exit_code: int | None
    log: str
    record: TaskRecord | None

    def to_json(self) -> dict[str, object]:
        return {
            "task": self.index,
            "label": self.label,
            "state": self.state,
            "exit_code": self.exit_code,
            "log": self.log,
        }


def task_states(
    batch: Batch, queue: dict[int, str] | None = None, submitted: set[int] | None = None
) -> list[TaskState]:
    """One state per task; ``queue`` maps indices still in SLURM's queue to their state."""
    queue = queue or {}
    submitted = submitted or set()
    states = []
    for task in batch.spec.tasks:
        record = batch.record(task.index)
        if task.index in queue:
            state = queue[task.index].lower()
        elif record is None:
            state = "lost" if task.index in submitted else "new"
        elif record.exit_code != 0:
            state = "failed"
        elif is_complete(record, batch.spec.image.digest, task.argv):
            state = "done"
        else:
            state = "stale"
        states.append(
            TaskState(
                task.index,
                task.label,
                state,
                record.exit_code if record else None,
                str(batch.log_path(task.index)),
                record,
            )
        )
    return states


def find_task(states: list[TaskState], ref: str) -> TaskState:
    """A task by label or index."""
    for item in states:
        if ref == item.label or (ref.isdigit() and int(ref) == item.index):
            return item
    raise ValidationError(f"no task '{ref}' in this batch", [], hint="give an index or a label")


def counts(states: list[TaskState]) -> dict[str, int]:
    result: dict[str, int] = {}
    for item in states:
        result[item.state] = result.get(item.state, 0) + 1
    return result


def current_states(batch: Batch, queue: dict[int, slurm.Queued] | None = None) -> list[TaskState]:
    """Task states now: records, plus SLURM's queue when the batch was ever submitted."""
    submitted = {i for s in slurm.submissions(batch) for i in s.indices}
    if queue is None:
        queue = slurm.queued(batch) if submitted else {}
    return task_states(batch, {i: q.state for i, q in queue.items()}, submitted)


def follow(
    batch: Batch, on_poll: Callable[[list[TaskState]], None], interval: float = 1.0
) -> list[TaskState]:
    """Poll until none of the batch's tasks is in SLURM's queue; the final states."""
    while True:
        queue = slurm.queued(batch)
        states = current_states(batch, queue)
        on_poll(states)
        if not queue:
            return states
        time.sleep(interval)
