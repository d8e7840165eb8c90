"""Task plans: what an array task needs, decided once when the array is submitted.

For each submitted task, ``tasks/<NNNN>/plan.json`` holds everything that does not depend on
the moment it runs: the RunSpec built exactly as :func:`neurodesk.jobs.task.run_task` builds
it (same binds, environment, working directory, writable output root), turned into the chosen
runtime's command line through the runtime interface, with the runtime's name and version and
the made-up files it reads from inherited fds. :mod:`neurodesk.jobs.hotpath` then runs a task
from its plan without importing anything of ours.

One rule is decided where the task runs, not here: a bind whose source is missing is skipped
(:meth:`RunSpec.present_binds`). The source of a bind may exist only on the compute node (a
node-local ``$TMPDIR``, ``/scratch/...`` made by a prolog) or be gone there, so the planned
command line holds every bind, and the plan lists where each one's words are; the hot path
drops, on the node, those whose source is missing there (a ``stat`` each).

Plans are written again at every submission (``resubmit`` too), so a changed environment or
runtime counts from the next submission on. Runtimes whose command line depends on a terminal
(podman, docker) get no plan, and neither do GPU batches (devices and driver libraries are
found on the node) or a login node without any runtime: those tasks take the full path and
decide on the node.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from neurodesk.errors import MissingToolError
from neurodesk.jobs.batch import Batch
from neurodesk.jobs.hotpath import PLAN_SCHEMA, environment, write_json
from neurodesk.jobs.task import task_runspec
from neurodesk.runtime.launch import RUNTIME_VAR, choose_runtime, prepare
from neurodesk.runtime.spec import (
    BINDPATH_VARS,
    ENV_PREFIXES,
    PASSTHROUGH_ENV,
    PASSTHROUGH_PREFIXES,
    Bind,
    RunSpec,
)

PLAN_NAME = "plan.json"
# The host variables a RunSpec and the runtime choice read: a task whose node has other values
# takes the full path (hotpath.environment_changes), so the node's environment still decides.
ENV_KEYS = (
    "PATH",
    "HOME",
    "USER",
    "TMPDIR",
    "NEURODESK_RUNTIME_OPTS",
    RUNTIME_VAR,
    *PASSTHROUGH_ENV,
    *BINDPATH_VARS,
)
ENV_KEY_PREFIXES = (*PASSTHROUGH_PREFIXES, *ENV_PREFIXES)
# What an unset or empty variable means to build_runspec (slurmstepd sets TMPDIR=/tmp).
ENV_DEFAULTS = {"TMPDIR": "/tmp"}
# A terminal at submission time would put -t into their command lines.
UNPLANNED_RUNTIMES = {"podman", "docker"}


class EveryBind(RunSpec):
    """A RunSpec whose command line keeps every bind, present here or not: the plan's."""

    def present_binds(self) -> list[Bind]:
        return list(self.binds)


def every_bind(spec: RunSpec) -> EveryBind:
    return EveryBind(**{f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)})


def bind_words(runtime: str, bind: Bind) -> list[str]:
    """The words of ``bind`` on the command line of a runtime that gets plans."""
    if runtime == "bwrap":
        return ["--ro-bind" if bind.readonly else "--bind", bind.src, bind.dst]
    return ["--bind", f"{bind.src}:{bind.dst}" + (":ro" if bind.readonly else "")]


def _span(argv: list[str], words: list[str]) -> int | None:
    """Where ``words`` start in ``argv``: their last occurrence (binds follow the image's own
    read-only binds), or None."""
    for start in range(len(argv) - len(words), -1, -1):
        if argv[start : start + len(words)] == words:
            return start
    return None


def planned_binds(
    spec: RunSpec, runtime: str, argv: list[str], runtime_argv: list[str]
) -> list[dict[str, object]] | None:
    """Each bind's source and the position of its words in both command lines; None when one
    cannot be placed (the task then takes the full path, which decides on the node)."""
    binds: list[dict[str, object]] = []
    for bind in spec.binds:
        words = bind_words(runtime, bind)
        start, runtime_start = _span(argv, words), _span(runtime_argv, words)
        if start is None or runtime_start is None:
            return None
        binds.append(
            {
                "source": bind.src,
                "start": start,
                "runtime_start": runtime_start,
                "count": len(words),
            }
        )
    return binds


def plan_path(batch: Batch, index: int) -> Path:
    return batch.task_dir(index) / PLAN_NAME


def _positions(argv: list[str], fd: int, path: str) -> list[int]:
    """Where ``fd`` is handed over for ``path`` in ``argv`` (the word before the path)."""
    return [i for i in range(len(argv) - 1) if argv[i] == str(fd) and argv[i + 1] == path]


def task_plan(batch: Batch, index: int, runtime: str) -> dict[str, object] | None:
    """The plan of task ``index``; None when its command line cannot be replayed (an fd the
    plan cannot place)."""
    task = batch.spec.tasks[index]
    spec = every_bind(task_runspec(batch, index))
    launch = prepare(spec, runtime)
    try:
        binds = planned_binds(spec, launch.runtime, launch.argv, launch.runtime_argv)
        if binds is None:
            return None
        files = []
        for path, fd in launch.fds.items():
            positions = _positions(launch.argv, fd, path)
            if not positions or path not in spec.files:
                return None
            files.append(
                {
                    "path": path,
                    "content": spec.files[path],
                    "positions": positions,
                    "runtime_positions": _positions(launch.runtime_argv, fd, path),
                }
            )
    finally:
        for fd in launch.fds.values():
            os.close(fd)
    return {
        "schema_version": PLAN_SCHEMA,
        "batch_id": batch.id,
        "task": index,
        "label": task.label,
        "image": batch.spec.image.model_dump(),
        "argv": task.argv,
        "env": spec.env,
        "cwd": spec.cwd,
        "input": task.input,
        "output_dir": task.output_dir,
        "log": str(batch.log_path(index)),
        "record": str(batch.record_path(index)),
        "runtime": {
            "name": launch.runtime,
            "version": launch.version,
            "argv": launch.runtime_argv,
        },
        "launch": launch.argv,
        "files": files,
        "binds": binds,
        "environ": environment(ENV_KEYS, ENV_KEY_PREFIXES, ENV_DEFAULTS),
        "environ_prefixes": list(ENV_KEY_PREFIXES),
        "environ_defaults": ENV_DEFAULTS,
    }


def plan_runtime(batch: Batch) -> str | None:
    """The runtime the batch's plans are made for; None when its tasks cannot run from plans
    (a GPU batch, no runtime on this machine, or a runtime without plans)."""
    if batch.spec.gpu:  # the GPU devices and driver libraries are the node's, not ours
        return None
    try:
        runtime = choose_runtime().name
    except MissingToolError:  # a login node without the runtime: the nodes choose their own
        return None
    return None if runtime in UNPLANNED_RUNTIMES else runtime


def write_plans(batch: Batch, indices: Sequence[int]) -> bool:
    """Write the plan of every task in ``indices``; False (and no plans left) when the tasks
    cannot run from a plan: a GPU batch, no runtime on this machine, or a runtime without
    plans."""
    runtime = plan_runtime(batch)
    plans = {}
    if runtime is not None:
        for index in indices:
            plan = task_plan(batch, index, runtime)
            if plan is None:
                break
            plans[index] = plan
    if len(plans) < len(indices):
        remove_plans(batch, indices)
        return False
    for index, plan in plans.items():
        # no fsync: a submission cut short by a crash is submitted again anyway
        write_json(str(plan_path(batch, index)), plan, sync=False)
    return True


def remove_plans(batch: Batch, indices: Sequence[int]) -> None:
    for index in indices:
        plan_path(batch, index).unlink(missing_ok=True)
