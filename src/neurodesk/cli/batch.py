"""``neurodesk batch``: one containerised command over many inputs, locally or on SLURM."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from neurodesk.cli.output import console, emit_json, err_console, json_option_help, print_table
from neurodesk.errors import NeurodeskError, ValidationError
from neurodesk.jobs import inputs as inputs_mod
from neurodesk.jobs import slurm
from neurodesk.jobs.batch import (
    Batch,
    batches_dir,
    check_command,
    define_batch,
    list_batches,
    load_batch,
)
from neurodesk.jobs.derivative import merge_description, summary
from neurodesk.jobs.local import default_jobs, run_local
from neurodesk.jobs.plan import plan_runtime
from neurodesk.jobs.provenance import TaskRecord
from neurodesk.jobs.status import (
    RERUN_STATES,
    TaskState,
    counts,
    current_states,
    find_task,
    follow,
)
from neurodesk.jobs.task import run_one
from neurodesk.jobs.template import PLACEHOLDERS
from neurodesk.paths import Paths
from neurodesk.store import Store

F = TypeVar("F", bound=Callable[..., Any])
POLL_SECONDS = 1.0


class BatchFailedError(NeurodeskError):
    """Some tasks of a batch failed (the others ran to the end)."""

    exit_code = 1


class BatchGroup(click.Group):
    """``neurodesk batch IMAGE ...`` is short for ``neurodesk batch run IMAGE ...``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        asks_help = {"-h", "--help"} & set(args)
        if args and args[0] == "run" and "--" not in args and not asks_help:
            raise ValidationError(
                "put the command to run after '--'",
                [],
                hint="e.g. neurodesk batch IMAGE --bids DIR -- dcm2niix -o {output_dir} {input}",
            )
        return super().parse_args(ctx, args)


def executor_options(func: F) -> F:
    """The scheduling flags shared by ``run`` and ``resubmit``."""
    options = [
        click.option(
            "--executor",
            type=click.Choice(["local", "slurm"]),
            default=None,
            help="where tasks run: 'local' (default) or 'slurm' (one sbatch job array)",
        ),
        click.option(
            "--jobs",
            "-j",
            type=click.IntRange(min=1),
            help="tasks at a time: local pool size (default: CPUs), or the SLURM array limit",
        ),
        click.option("--cpus", type=click.IntRange(min=1), help="SLURM: CPUs per task"),
        click.option("--mem", help="SLURM: memory per task (e.g. 4G)"),
        click.option("--time", "time_limit", help="SLURM: time limit per task (e.g. 01:00:00)"),
        click.option("--gpus", help="SLURM: GPUs per task (e.g. 1 or a100:1)"),
        click.option("--partition", "-p", help="SLURM: partition"),
        click.option("--account", "-A", help="SLURM: account to charge"),
        click.option(
            "--wait/--no-wait",
            default=False,
            help="SLURM: stay until every task ended, with a progress bar, then summarise",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group(cls=BatchGroup, no_args_is_help=True)
def batch() -> None:
    """Run a containerised command over many inputs, locally or as SLURM job arrays.

    \b
    Examples:
      neurodesk batch dcm2niix --bids data/sourcedata --output data/derivatives/dcm2niix \\
          -- dcm2niix -z y -o {output_dir} -f sub-{subject}_ses-{session} {input}/dicom
      neurodesk batch mrtrix3 --glob 'scans/*.nii.gz' --executor slurm --mem 4G \\
          -- mrconvert {input} {output_dir}/{input_stem}.mif
      neurodesk batch status dcm2niix-3f1a2b4c5d
      neurodesk batch resubmit dcm2niix-3f1a2b4c5d --failed

    Every task writes a provenance record (image digest, runtime, argv, environment, sha256 of
    inputs and outputs, times, exit code, host). Running the same command line again skips the
    tasks whose outputs are complete. Batches live in $NEURODESK_HOME/batches/<id>/.
    """


def placeholder_help() -> str:
    return "; ".join(f"{{{name}}} {text}" for name, text in PLACEHOLDERS.items())


@batch.command(
    "run",
    epilog="Placeholders: " + placeholder_help() + ". Write a literal brace as {{ or }}.",
)
@click.argument("image")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--bids", type=click.Path(path_type=Path), help="every sub-*/ses-* of a dataset")
@click.option("--glob", "pattern", help="every file matching a pattern (quote it)")
@click.option(
    "--list", "list_file", type=click.Path(path_type=Path), help="a file with one input per line"
)
@click.option("--subject", multiple=True, help="with --bids: only this subject (repeatable)")
@click.option("--session", multiple=True, help="with --bids: only this session (repeatable)")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="output root; each task gets {output_dir} below it (default: in the batch directory)",
)
@click.option("--bind", "-B", "binds", multiple=True, metavar="SRC[:DST[:ro]]")
@click.option("--env", "-e", "env", multiple=True, metavar="KEY=VALUE", help="set in the task")
@click.option("--name", help="batch id (default: image name + hash of the definition)")
@click.option(
    "--batches",
    "batches_root",
    type=click.Path(file_okay=False, path_type=Path),
    help="where the batch directory goes (default: $NEURODESK_HOME/batches); "
    "other batch commands then take its path",
)
@click.option("--force", is_flag=True, help="run every task, even those already complete")
@click.option(
    "--dry-run",
    is_flag=True,
    help="print each task's command line, run nothing; on stderr: what would run "
    "(with --executor slurm, the sbatch command and its script)",
)
@executor_options
def run(
    image: str,
    command: tuple[str, ...],
    bids: Path | None,
    pattern: str | None,
    list_file: Path | None,
    subject: tuple[str, ...],
    session: tuple[str, ...],
    output: Path | None,
    binds: tuple[str, ...],
    env: tuple[str, ...],
    name: str | None,
    batches_root: Path | None,
    force: bool,
    dry_run: bool,
    **scheduling: Any,
) -> None:
    """Run COMMAND in IMAGE (NAME[/VERSION]) once per input.

    Inputs come from exactly one of --bids, --glob or --list. Put the command after "--";
    its placeholders ({subject}, {session}, {input}, {input_stem}, {output_dir}, ...) are
    filled in per input.
    """
    chosen = [
        flag
        for flag, value in (("--bids", bids), ("--glob", pattern), ("--list", list_file))
        if value
    ]
    if len(chosen) != 1:
        raise ValidationError(
            "give exactly one input source" + (f" (got {', '.join(chosen)})" if chosen else ""),
            [],
            hint="--bids DIR, --glob 'PATTERN' or --list FILE",
        )
    if (subject or session) and not bids:
        raise ValidationError("--subject/--session need --bids", [])
    if bids:
        items = inputs_mod.from_bids(bids, subject, session)
        source = f"bids {bids.absolute()}"
    elif pattern:
        items = inputs_mod.from_glob(pattern)
        source = f"glob {pattern}"
    else:
        assert list_file is not None
        items = inputs_mod.from_list(list_file)
        source = f"list {list_file.absolute()}"
    check_command(list(command), items)  # placeholder mistakes first: they need no image
    record = Store(Paths.from_env().store).resolve(image)
    the_batch = define_batch(
        record,
        list(command),
        items,
        source=source,
        output_root=output,
        bids_dir=bids,
        binds=binds,
        env=parse_env(env),
        gpu=bool(scheduling.get("gpus")),
        name=name,
        create=not dry_run,
        batches_root=batches_root,
    )
    if dry_run:
        for task in the_batch.spec.tasks:
            console.print(f"[bold]{task.label}[/]: {shlex.join(task.argv)}", soft_wrap=True)
    todo = [t.index for t in the_batch.spec.tasks if force or not the_batch.is_complete(t.index)]
    skipped = len(the_batch.spec.tasks) - len(todo)
    if skipped:
        err_console.print(
            f"{skipped} of {len(the_batch.spec.tasks)} tasks already complete "
            "(exit 0, outputs unchanged): " + ("would be skipped" if dry_run else "skipped")
        )
    if dry_run:
        describe_dry_run(the_batch, todo, scheduling)
        return
    execute(the_batch, todo, scheduling)


def describe_dry_run(the_batch: Batch, todo: list[int], scheduling: dict[str, Any]) -> None:
    """What a run would do (on stderr; stdout has only the tasks' command lines): the batch
    directory, the tasks that would run and, for SLURM, the sbatch command and its script."""
    exists = (the_batch.root / "batch.json").is_file()
    err_console.print(
        f"batch [bold]{the_batch.id}[/]: {the_batch.root} "
        + ("(exists)" if exists else "(dry run: not created)"),
        soft_wrap=True,
    )
    if not todo:
        err_console.print("nothing to run")
        return
    if (scheduling.get("executor") or "local") == "local":
        jobs = scheduling.get("jobs") or default_jobs()
        err_console.print(f"would run {len(todo)} task(s) here, {jobs} at a time")
        return
    options = slurm.SlurmOptions.model_validate(scheduling)
    args = slurm.sbatch_args(the_batch, todo, options)
    script = slurm.next_script(the_batch)
    text = slurm.script_text(the_batch, script, args, plan_runtime(the_batch) is not None)
    err_console.print(
        f"would submit {len(todo)} task(s) as one SLURM job array "
        "(tasks already in the queue are left out when it runs):",
        soft_wrap=True,
    )
    err_console.print(f"  sbatch {shlex.join([*args, str(script)])}", markup=False, soft_wrap=True)
    err_console.print(f"with {script}:", markup=False, soft_wrap=True)
    err_console.print(text, markup=False, end="", soft_wrap=True)


def ref(the_batch: Batch) -> str:
    """How other batch commands find this batch: its id, or its path outside the default."""
    return the_batch.id if the_batch.root.parent == batches_dir() else str(the_batch.root)


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ValidationError(f"--env '{pair}' is not KEY=VALUE", [])
        env[key] = value
    return env


def execute(the_batch: Batch, todo: list[int], scheduling: dict[str, Any]) -> None:
    """Run ``todo`` with the chosen executor, then summarise (or say how to follow)."""
    executor = scheduling.get("executor") or "local"
    err_console.print(f"batch [bold]{the_batch.id}[/]: {the_batch.root}", soft_wrap=True)
    if executor == "local":
        if todo:
            jobs = scheduling.get("jobs") or default_jobs()
            with LocalProgress(len(todo)) as progress:
                run_local(the_batch, todo, jobs, progress.advance)
        finish(the_batch, current_states(the_batch, queue={}))
        return
    if not todo:
        finish(the_batch, current_states(the_batch))
        return
    in_queue = slurm.queued(the_batch)
    todo = [i for i in todo if i not in in_queue]
    options = slurm.SlurmOptions.model_validate(scheduling)
    if todo:
        submission = slurm.submit(the_batch, todo, options)
        err_console.print(
            f"submitted {len(todo)} task(s) as SLURM job array {submission.job_id}", soft_wrap=True
        )
    if not scheduling.get("wait"):
        err_console.print(f"follow with: neurodesk batch status {ref(the_batch)}")
        return
    finish(the_batch, wait_for_slurm(the_batch))


class LocalProgress:
    """A live bar on a terminal; one line per finished task otherwise (logs, CI)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self.progress: Progress | None = None

    def __enter__(self) -> LocalProgress:
        if err_console.is_terminal:
            self.progress = Progress(
                TextColumn("running"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("[red]{task.fields[failed]} failed"),
                TimeElapsedColumn(),
                console=err_console,
            )
            self.progress.start()
            self.task_id = self.progress.add_task("tasks", total=self.total, failed=0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def advance(self, record: TaskRecord) -> None:
        self.done += 1
        self.failed += record.exit_code != 0
        if self.progress is not None:
            self.progress.update(self.task_id, advance=1, failed=self.failed)
            return
        outcome = "ok" if record.exit_code == 0 else f"FAILED (exit {record.exit_code})"
        err_console.print(
            f"[{self.done}/{self.total}] {record.label}: {outcome} in {record.duration_s:.2f} s",
            markup=False,
            soft_wrap=True,
        )


def wait_for_slurm(the_batch: Batch) -> list[TaskState]:
    """Follow the queue with a progress bar until every task ended."""
    total = len(the_batch.spec.tasks)
    with Progress(
        TextColumn("SLURM"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=err_console,
        disable=not err_console.is_terminal,
    ) as progress:
        bar = progress.add_task("tasks", total=total, detail="")

        def show(states: list[TaskState]) -> None:
            tally = counts(states)
            ended = total - tally.get("pending", 0) - tally.get("running", 0)
            progress.update(bar, completed=ended, detail=describe(tally))

        return follow(the_batch, show, POLL_SECONDS)


def describe(tally: dict[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in sorted(tally.items()))


def finish(the_batch: Batch, states: list[TaskState]) -> None:
    """Print the outcome; failures with their logs make the command fail."""
    tally = counts(states)
    err_console.print(
        f"batch {the_batch.id}: " + describe(tally),
        soft_wrap=True,
    )
    failures = [s for s in states if s.state in ("failed", "lost", "stale")]
    for item in failures:
        code = f"exit {item.exit_code}" if item.exit_code is not None else item.state
        err_console.print(f"  {item.label}: {code} — log: {item.log}", markup=False, soft_wrap=True)
    if failures:
        raise BatchFailedError(
            f"{len(failures)} of {len(states)} tasks of batch {the_batch.id} failed",
            hint="see the logs above; after fixing: "
            f"neurodesk batch resubmit {ref(the_batch)} --failed",
        )


@batch.command()
@click.argument("batch_ref", metavar="BATCH")
@click.option("--json", "as_json", is_flag=True, help=json_option_help)
def status(batch_ref: str, as_json: bool) -> None:
    """Each task's state: done, failed, pending, running, lost (no record, left the queue)."""
    the_batch = load_batch(batch_ref)
    states = current_states(the_batch)
    if as_json:
        emit_json(
            {
                "batch_id": the_batch.id,
                "counts": counts(states),
                "tasks": [s.to_json() for s in states],
            }
        )
        return
    print_table(
        f"batch {the_batch.id} — " + describe(counts(states)),
        ["TASK", "LABEL", "STATE", "EXIT", "LOG"],
        [
            (s.index, s.label, s.state, "" if s.exit_code is None else s.exit_code, s.log)
            for s in states
        ],
    )


@batch.command()
@click.argument("batch_ref", metavar="BATCH")
@click.argument("tasks", nargs=-1)
@click.option("--failed", is_flag=True, help="the logs of every failed task")
@click.option("--json", "as_json", is_flag=True, help="the tasks and their log paths, as JSON")
def logs(batch_ref: str, tasks: tuple[str, ...], failed: bool, as_json: bool) -> None:
    """Print the logs of TASKS (index or label), or of every failed task with --failed."""
    the_batch = load_batch(batch_ref)
    states = current_states(the_batch)
    if failed:
        chosen = [s for s in states if s.state in ("failed", "lost", "stale")]
    elif tasks:
        chosen = [find_task(states, t) for t in tasks]
    else:
        chosen = states
    if as_json:
        emit_json([s.to_json() for s in chosen])
        return
    if not failed and not tasks:
        print_table(
            None,
            ["TASK", "LABEL", "STATE", "LOG"],
            [(s.index, s.label, s.state, s.log) for s in states],
        )
        return
    for item in chosen:
        console.print(f"[bold]==> {item.label} ({item.state}): {item.log}[/]", soft_wrap=True)
        for path in [Path(item.log), *sorted(the_batch.task_dir(item.index).glob("slurm-*.out"))]:
            if path.is_file() and path.stat().st_size:
                if path.name != "log.txt":
                    console.print(f"[dim]--- {path.name} (SLURM's output of run-task)[/]")
                console.print(
                    path.read_text(errors="replace"), markup=False, end="", soft_wrap=True
                )


@batch.command()
@click.argument("batch_ref", metavar="BATCH")
def cancel(batch_ref: str) -> None:
    """Cancel the batch's SLURM jobs that are still pending or running."""
    the_batch = load_batch(batch_ref)
    jobs = slurm.cancel(the_batch)
    err_console.print(f"cancelled SLURM job(s) {', '.join(jobs)}" if jobs else "nothing queued")


@batch.command()
@click.argument("batch_ref", metavar="BATCH")
@click.option("--failed", is_flag=True, required=True, help="only the failed (or lost) tasks")
@executor_options
def resubmit(batch_ref: str, failed: bool, **scheduling: Any) -> None:
    """Run the failed tasks of BATCH again (same executor as before unless --executor)."""
    the_batch = load_batch(batch_ref)
    states = current_states(the_batch)
    todo = [s.index for s in states if s.state in RERUN_STATES and s.state != "new"]
    if not scheduling.get("executor"):
        scheduling["executor"] = "slurm" if slurm.submissions(the_batch) else "local"
    if not todo:
        err_console.print(f"batch {the_batch.id}: no failed tasks")
        return
    err_console.print(
        f"resubmitting {len(todo)} task(s): {', '.join(states[i].label for i in todo)}",
        soft_wrap=True,
    )
    execute(the_batch, todo, scheduling)


@batch.command("summary")
@click.argument("batch_ref", metavar="BATCH")
@click.option(
    "--bids-derivative",
    type=click.Path(file_okay=False, path_type=Path),
    help="add GeneratedBy (image, version, container) to DIR/dataset_description.json",
)
@click.option("--json", "as_json", is_flag=True, help=json_option_help)
def summary_cmd(batch_ref: str, bids_derivative: Path | None, as_json: bool) -> None:
    """Counts, failures with their logs, and the records of BATCH."""
    the_batch = load_batch(batch_ref)
    states = current_states(the_batch)
    data = summary(the_batch, states)
    if bids_derivative is not None:
        data["dataset_description"] = str(merge_description(the_batch, bids_derivative))
    if as_json:
        emit_json(data)
        return
    image = the_batch.spec.image
    console.print(f"batch {the_batch.id}: {image.id} ({image.digest[:19]})", soft_wrap=True)
    console.print(f"command: {shlex.join(the_batch.spec.command)}", markup=False, soft_wrap=True)
    console.print("tasks: " + describe(data["counts"]))
    for failure in data["failures"]:
        console.print(
            f"  failed {failure['label']}: exit {failure['exit_code']} — log: {failure['log']}",
            markup=False,
            soft_wrap=True,
        )
    if "dataset_description" in data:
        console.print(f"GeneratedBy written to {data['dataset_description']}", soft_wrap=True)


@batch.command("list")
@click.option("--json", "as_json", is_flag=True, help=json_option_help)
def list_cmd(as_json: bool) -> None:
    """The batches under $NEURODESK_HOME/batches."""
    batches = list_batches()
    if as_json:
        emit_json(
            [
                {
                    "batch_id": b.id,
                    "created": b.spec.created,
                    "image": b.spec.image.id,
                    "tasks": len(b.spec.tasks),
                    "path": str(b.root),
                }
                for b in batches
            ]
        )
        return
    print_table(
        None,
        ["BATCH", "CREATED", "IMAGE", "TASKS", "SOURCE"],
        [
            (b.id, b.spec.created, b.spec.image.id, len(b.spec.tasks), b.spec.source)
            for b in batches
        ],
    )


@batch.command("run-task", hidden=True)
@click.argument("batch_dir", type=click.Path(path_type=Path))
@click.argument("index", type=int)
def run_task_cmd(batch_dir: Path, index: int) -> None:
    """Run one task (what each SLURM array task executes); exits with the task's exit code."""
    raise SystemExit(run_one(batch_dir, index))


def register(group: click.Group) -> None:
    group.add_command(batch)
