"""The hot path of a SLURM array task: run one task from the plan written when it was submitted.

Everything that is the same whenever the task runs is decided once, at submission
(:mod:`neurodesk.jobs.plan`): the runtime, its version and its full command line (binds,
environment, identity files), the task's argv, input, output directory and the image's
identity. One rule is the node's: a bind whose source is missing where the task runs is left
out of the command line (:func:`missing_binds`), as a wrapper there would leave it out. A task
then only reads its ``plan.json``, removes what its previous run wrote, hashes its input, runs
the command line with its output in ``log.txt``, hashes its outputs and writes
its provenance record: the same record, field for field, as
:func:`neurodesk.jobs.task.run_task` writes.

Standard library only and no other module of ours, so the submitted script runs this file
directly (``python -I -S .../jobs/hotpath.py BATCH_DIR INDEX``) and a task pays for the
interpreter's start-up and little else: no pydantic, no store, no runtime choice. The pieces the
full path shares (signals, bwrap's set-up failure, the clock, the hashes) live here, once.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; the types are for mypy only
    from collections.abc import Mapping, Sequence
    from types import FrameType
    from typing import BinaryIO, TypedDict

    class PlannedFile(TypedDict):
        """A made-up file (``/etc/passwd``...) handed to the runtime as an inheritable fd."""

        path: str
        content: str
        positions: list[int]  # where its fd number goes in ``launch``
        runtime_positions: list[int]  # ... and in ``runtime.argv``

    class PlannedBind(TypedDict):
        """A bind, kept only when its source exists where the task runs."""

        source: str
        start: int  # where its words start in ``launch``
        runtime_start: int  # ... and in ``runtime.argv``
        count: int  # how many words it has

    class PlannedRuntime(TypedDict):
        name: str
        version: str
        argv: list[str]

    class TaskPlan(TypedDict):
        schema_version: str
        batch_id: str
        task: int
        label: str
        image: dict[str, str]
        argv: list[str]
        env: dict[str, str]
        cwd: str
        input: str
        output_dir: str
        log: str
        record: str
        runtime: PlannedRuntime
        launch: list[str]  # what runs: the runtime's command line under its signal forwarder
        files: list[PlannedFile]
        binds: list[PlannedBind]  # every bind; those whose source is missing here are dropped
        environ: dict[str, str | None]  # the host variables the plan was made with
        environ_prefixes: list[str]  # ... including every variable with one of these prefixes
        environ_defaults: dict[str, str]  # what an unset variable means (TMPDIR: /tmp)


PLAN_SCHEMA = "neurodesk.task-plan/2"
RECORD_SCHEMA = "neurodesk.task-record/1"
# How often a run is retried when bwrap fails before the command starts.
SETUP_RETRIES = 2
# After a forwarded SIGTERM, how long the program may take to end before SIGKILL.
STOP_GRACE = 5.0


class Interrupted(Exception):
    """The scheduler asked the task to stop (scancel, time limit): SIGTERM or SIGINT."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


STOPPING = {signal.SIGTERM, signal.SIGINT}


def raise_on_signals() -> None:
    """Turn SIGTERM/SIGINT into ``Interrupted`` so a cancelled task still leaves a record."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise Interrupted(signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def ignore_signals() -> None:
    """Once the program has ended, SIGTERM/SIGINT are ignored: the scheduler signals every
    process of the job in turn, and the one it reaches after the program must not cut the
    record short (SIGKILL still follows after the scheduler's grace time)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def setup_failed(log: BinaryIO, mark: int, exit_code: int) -> bool:
    """bwrap itself failed (exit 1, its own message first), so the command never ran."""
    if exit_code != 1:
        return False
    log.seek(mark)
    head = log.read(200)
    log.seek(0, os.SEEK_END)
    return head.startswith(b"bwrap: ")


def normal_path(path: str) -> str:
    """What ``str(pathlib.Path(path))`` gives: no repeated slashes, ``.`` parts or trailing
    slash; ``..`` stays (it may cross a symlink)."""
    parts = [p for p in path.split("/") if p and p != "."]
    if path.startswith("/"):
        root = "//" if path.startswith("//") and not path.startswith("///") else "/"
        return root + "/".join(parts)
    return "/".join(parts) or "."


def within(path: str, root: str) -> bool:
    """``Path(path).is_relative_to(root)``, without pathlib."""
    path, root = normal_path(path), normal_path(root)
    return path == root or path.startswith(root.rstrip("/") + "/")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """``sha256:<hex>`` of a file's content."""
    with open(path, "rb") as handle:
        return "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()


def hash_tree(path: str | os.PathLike[str]) -> dict[str, str]:
    """sha256 of ``path`` (a file) or of every regular file below it (a directory), keyed by
    path; directories and names in sorted order."""
    root = normal_path(os.fspath(path))
    if os.path.isfile(root):
        return {root: sha256_file(root)}
    hashes: dict[str, str] = {}
    if os.path.isdir(root):
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                file = os.path.join(dirpath, name)
                if os.path.isfile(file):
                    hashes[file] = sha256_file(file)
    return hashes


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_json(path: str, data: object, sync: bool = True) -> None:
    """``data`` as indented JSON, atomically (temporary file, fsync unless ``sync`` is False,
    rename), mode 644.

    The layout is pydantic's ``model_dump_json(indent=2)``: a record reads the same whichever
    path wrote it.
    """
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.fchmod(fd, 0o644)
        _write_all(fd, text.encode())
        if sync:
            os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def task_dir(batch_dir: str, index: int) -> str | None:
    """``tasks/<NNNN>`` of task ``index``: the width is the batch's (at least 4 digits, more
    for batches of 10000 tasks or more), found without reading the definition."""
    for width in range(max(4, len(str(index))), 12):
        candidate = os.path.join(batch_dir, "tasks", f"{index:0{width}d}")
        if os.path.isdir(candidate):
            return candidate
    return None


def read_plan(batch_dir: str, index: int) -> TaskPlan | None:
    """The plan of task ``index``, or None when it has none (or one this version cannot read)."""
    directory = task_dir(batch_dir, index)
    if directory is None:
        return None
    try:
        with open(os.path.join(directory, "plan.json"), "rb") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("schema_version") != PLAN_SCHEMA:
        return None
    plan: TaskPlan = data  # type: ignore[assignment]  # written by plan.py, same version
    return plan


def environment(
    keys: Sequence[str], prefixes: Sequence[str], defaults: Mapping[str, str]
) -> dict[str, str | None]:
    """The values of ``keys`` (``defaults`` when unset or empty, else None) and of every
    variable starting with one of ``prefixes``, from this process's environment."""
    values = {key: os.environ.get(key) or defaults.get(key) for key in keys}
    for key, value in os.environ.items():
        if key.startswith(tuple(prefixes)):
            values[key] = value
    return values


def environment_changes(plan: TaskPlan) -> list[str]:
    """The variables whose values here differ from the submission's (HOME, TMPDIR, bind
    paths, runtime, ...); when there are any, the task takes the full path."""
    keys = [k for k in plan["environ"] if not k.startswith(tuple(plan["environ_prefixes"]))]
    now = environment(keys, plan["environ_prefixes"], plan["environ_defaults"])
    return sorted(k for k in {*now, *plan["environ"]} if now.get(k) != plan["environ"].get(k))


def remove_previous_outputs(record_path: str, output_dir: str) -> int:
    """Delete the files the task's previous run wrote (its record lists them).

    A re-run must start from the same state as the first run: many tools refuse to overwrite
    (dcm2niix writes ``name a.nii`` next to the old file), which would mix two runs' outputs.
    Only files the record names below the task's output directory are touched.
    """
    try:
        with open(record_path, "rb") as handle:
            previous = json.load(handle)
    except (OSError, ValueError):
        return 0
    outputs = previous.get("outputs") if isinstance(previous, dict) else None
    count = 0
    for name in outputs if isinstance(outputs, dict) else ():
        if os.path.isfile(name) and within(name, output_dir):
            os.unlink(name)
            count += 1
    return count


def scheduler_info() -> dict[str, str | None]:
    if "SLURM_JOB_ID" not in os.environ:
        return {"name": "local", "job_id": None, "array_task_id": None}
    return {
        "name": "slurm",
        "job_id": os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID"),
        "array_task_id": os.environ.get("SLURM_ARRAY_TASK_ID"),
    }


def _stop(pid: int, sig: int) -> None:
    """``sig`` to the runtime (its forwarder passes it to the program), SIGKILL after
    STOP_GRACE seconds; reaps it.

    The runtime may have ended already (the scheduler signals every process of the job, and
    Python runs our handler after the wait returned): :func:`execute` waits without reaping, so
    it is still there to reap; a runtime reaped by someone else is simply gone."""
    try:
        os.kill(pid, sig)
        deadline = time.monotonic() + STOP_GRACE
        while time.monotonic() < deadline:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        return  # reaped already: nothing left to stop


def missing_binds(plan: TaskPlan) -> tuple[set[int], set[int]]:
    """The words to drop from ``launch`` and from ``runtime.argv``: those of each bind whose
    source does not exist here (the RunSpec's rule, decided on the node as a wrapper or
    ``neurodesk exec`` on the node would decide it)."""
    drop: set[int] = set()
    runtime_drop: set[int] = set()
    for bind in plan["binds"]:
        if not os.path.exists(bind["source"]):
            drop.update(range(bind["start"], bind["start"] + bind["count"]))
            runtime_drop.update(range(bind["runtime_start"], bind["runtime_start"] + bind["count"]))
    return drop, runtime_drop


def execute(plan: TaskPlan, log: BinaryIO) -> tuple[int, Interrupted | None, PlannedRuntime]:
    """Run the planned command line with its output in ``log``; the exit code, the signal if
    stopped, and the runtime that ran (its argv with this run's fd numbers)."""
    argv = list(plan["launch"])
    runtime: PlannedRuntime = {**plan["runtime"], "argv": list(plan["runtime"]["argv"])}
    fds: list[int] = []
    # SIGTERM/SIGINT wait while the runtime is being started: one arriving then is delivered
    # in the wait below, where it stops the runtime and still leaves a record
    signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING)
    try:
        for item in plan["files"]:
            fd = os.memfd_create("neurodesk" + item["path"].replace("/", "-"), 0)
            fds.append(fd)
            _write_all(fd, item["content"].encode())
            os.lseek(fd, 0, os.SEEK_SET)
            os.set_inheritable(fd, True)
            for i in item["positions"]:
                argv[i] = str(fd)
            for i in item["runtime_positions"]:
                runtime["argv"][i] = str(fd)
        drop, runtime_drop = missing_binds(plan)
        if drop:
            argv = [word for i, word in enumerate(argv) if i not in drop]
            runtime["argv"] = [w for i, w in enumerate(runtime["argv"]) if i not in runtime_drop]
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, log.fileno(), 1),
            (os.POSIX_SPAWN_DUP2, log.fileno(), 2),
        ]
        pid = os.posix_spawnp(
            argv[0],
            argv,
            os.environ,
            file_actions=actions,
            setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),  # as subprocess restores them
            setsigmask=(),
        )
    except OSError as exc:  # the runtime vanished since the submission
        log.write(f"neurodesk: cannot start the runtime: {exc}\n".encode())
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPPING)
        return 127, None, {"name": "none", "version": "", "argv": []}
    finally:
        for fd in fds:
            os.close(fd)
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPPING)
        # Wait without reaping: a stop whose handler runs just after the runtime ended then
        # still finds it (a zombie), never a reused pid.
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        ignore_signals()
        status = os.waitpid(pid, 0)[1]
    except Interrupted as exc:
        ignore_signals()  # one stop is enough; a second signal must not cut it short
        _stop(pid, exc.signum)
        log.write(f"\nneurodesk: task stopped by signal {exc.signum}\n".encode())
        return 128 + exc.signum, exc, runtime
    code = os.waitstatus_to_exitcode(status)
    return (128 - code if code < 0 else code), None, runtime


def run_planned(plan: TaskPlan) -> int:
    """Run the task of ``plan`` and write its record; its exit code (128+N if stopped by N)."""
    out = plan["output_dir"]
    os.makedirs(out, exist_ok=True)
    removed = remove_previous_outputs(plan["record"], out)
    os.makedirs(os.path.dirname(plan["log"]), exist_ok=True)
    inputs = hash_tree(plan["input"])
    start, started = now(), time.monotonic()
    with open(plan["log"], "w+b") as log:
        if removed:
            log.write(f"neurodesk: removed {removed} output(s) of the previous run\n".encode())
        try:
            for attempt in range(1 + SETUP_RETRIES):
                log.flush()
                mark = log.tell()
                exit_code, interrupted, runtime = execute(plan, log)
                if interrupted or not setup_failed(log, mark, exit_code):
                    break
                if attempt == SETUP_RETRIES:
                    break
                raise_on_signals()  # execute ignores them once the runtime has ended
                # the command never started: bwrap lost a race with a mount changing under a
                # bound directory (e.g. a build's overlay under /tmp); that is worth a retry
                log.write(b"neurodesk: the runtime failed before the command started; retrying\n")
                time.sleep(0.2 * (attempt + 1))
        except Interrupted as exc:  # stopped before (or between) runs: still a record
            ignore_signals()
            log.write(f"\nneurodesk: task stopped by signal {exc.signum}\n".encode())
            exit_code, runtime = 128 + exc.signum, {"name": "none", "version": "", "argv": []}
    end = now()
    # the field order of provenance.TaskRecord
    record = {
        "schema_version": RECORD_SCHEMA,
        "batch_id": plan["batch_id"],
        "task": plan["task"],
        "label": plan["label"],
        "image": plan["image"],
        "runtime": runtime,
        "argv": plan["argv"],
        "env": plan["env"],
        "cwd": plan["cwd"],
        "inputs": inputs,
        "outputs": hash_tree(out),
        "start": start,
        "end": end,
        "duration_s": round(time.monotonic() - started, 3),
        "exit_code": exit_code,
        "host": os.uname().nodename,
        "scheduler": scheduler_info(),
        "log": plan["log"],
    }
    # no fsync (a third of the hot path's own time): the rename is atomic, and a record lost
    # to a node crash only makes the task "lost", which resubmit --failed runs again
    write_json(plan["record"], record, sync=False)
    return exit_code


def run_task(batch_dir: str, index: int, say: bool = True) -> int | None:
    """Run task ``index`` of the batch from its plan; None when it has no plan, or one made
    for another environment (the caller then takes the full path)."""
    plan = read_plan(batch_dir, index)
    if plan is None:
        return None
    changed = environment_changes(plan)
    if changed:
        if say:
            print(
                f"neurodesk: task {index}: {', '.join(changed)} differ(s) from the submission;"
                " taking the full path",
                file=sys.stderr,
            )
        return None
    raise_on_signals()
    try:
        return run_planned(plan)
    except Interrupted as exc:  # scancel or the time limit: the record is written already
        return 128 + exc.signum


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -I -S hotpath.py BATCH_DIR INDEX", file=sys.stderr)
        return 2
    code = run_task(argv[0], int(argv[1]))
    if code is None:  # the full path, with site packages: it reads the batch and decides
        sys.stdout.flush()
        sys.stderr.flush()
        full = [sys.executable, "-m", "neurodesk.jobs", "run-task", argv[0], argv[1]]
        os.execv(sys.executable, full)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
