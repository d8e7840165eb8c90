"""A batch on disk: its definition, one directory per task (log, record), its submissions.

Layout of ``$NEURODESK_HOME/batches/<id>/``::

    batch.json              the definition: image, command template, one expanded task per input
    tasks/<NNNN>/log.txt    the task's stdout and stderr
    tasks/<NNNN>/record.json  its provenance record (written when it ends, atomically)
    slurm/                  submitted scripts and submissions.json (job ids → task indices)

The id is derived from the definition (image digest, command, inputs, outputs), so running the
same command line again finds the same batch and skips the tasks that are already complete.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from pydantic import BaseModel

from neurodesk.errors import NotFoundError, ValidationError
from neurodesk.jobs import template
from neurodesk.jobs.inputs import Input
from neurodesk.jobs.provenance import ImageInfo, TaskRecord, is_complete
from neurodesk.paths import Paths
from neurodesk.store import ImageRecord, Store
from neurodesk.store.atomic import write_text

BATCH_SCHEMA = "neurodesk.batch/1"


class TaskSpec(BaseModel):
    index: int
    label: str
    input: str
    subject: str | None = None
    session: str | None = None
    argv: list[str]
    output_dir: str


class BatchSpec(BaseModel):
    schema_version: str = BATCH_SCHEMA
    id: str
    created: str
    image: ImageInfo
    command: list[str]  # the template, placeholders unexpanded
    source: str  # "bids DIR", "glob PATTERN" or "list FILE", for people
    bids_dir: str | None = None
    output_root: str
    binds: list[str] = []
    env: dict[str, str] = {}
    gpu: bool = False
    tasks: list[TaskSpec]


def batches_dir() -> Path:
    return Paths.from_env().home / "batches"


def image_info(record: ImageRecord) -> ImageInfo:
    return ImageInfo(
        name=record.name,
        version=record.version,
        builddate=record.builddate,
        id=record.id,
        digest=record.digest,
    )


class Batch:
    def __init__(self, root: Path, spec: BatchSpec) -> None:
        self.root = root
        self.spec = spec

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def pad(self) -> int:
        """Digits in task directory names (SLURM's ``%4a`` must produce the same)."""
        return max(4, len(str(len(self.spec.tasks) - 1)))

    def task_dir(self, index: int) -> Path:
        return self.root / "tasks" / f"{index:0{self.pad}d}"

    def log_path(self, index: int) -> Path:
        return self.task_dir(index) / "log.txt"

    def record_path(self, index: int) -> Path:
        return self.task_dir(index) / "record.json"

    def record(self, index: int) -> TaskRecord | None:
        return TaskRecord.load(self.record_path(index))

    def is_complete(self, index: int) -> bool:
        task = self.spec.tasks[index]
        return is_complete(self.record(index), self.spec.image.digest, task.argv)

    @cached_property
    def image(self) -> ImageRecord:
        """The exact image the batch was defined with (same digest), from the store."""
        info = self.spec.image
        store = Store(Paths.from_env().store)
        record = store.resolve(f"{info.name}/{info.version}/{info.builddate}")
        if record.digest != info.digest:
            raise NotFoundError(
                f"image {info.id} in the store is {record.digest[:19]}, "
                f"batch {self.id} was defined with {info.digest[:19]}",
                hint="run the batch command again to define a new batch for the new image",
            )
        return record

    def save(self) -> None:
        for task in self.spec.tasks:
            self.task_dir(task.index).mkdir(parents=True, exist_ok=True)
        write_text(self.root / "batch.json", self.spec.model_dump_json(indent=2) + "\n")


def definition_hash(
    image: ImageInfo,
    command: list[str],
    inputs: list[Input],
    output_root: Path | None,
    env: dict[str, str],
    binds: tuple[str, ...] = (),
) -> str:
    data = {
        "image": image.digest,
        "command": command,
        "inputs": [str(i.path) for i in inputs],
        "output_root": str(output_root) if output_root else None,
        "env": env,
        "binds": list(binds),
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]


def check_command(command: list[str], inputs: list[Input]) -> None:
    """Every placeholder is known and has a value for every input (before anything runs)."""
    per_batch = {"output_dir": "", "output_root": "", "task": "", "batch_id": ""}
    for item in inputs:
        template.check(command, {**item.values(), **per_batch}, item.label)


def output_dir_for(item: Input, output_root: Path) -> Path:
    """BIDS derivatives layout (sub-X/ses-Y) for BIDS inputs, one folder per label otherwise."""
    if item.subject is not None:
        out = output_root / f"sub-{item.subject}"
        return out / f"ses-{item.session}" if item.session is not None else out
    return output_root / item.label


def check_output_root(root: Path) -> None:
    """``--output`` must be a directory, or missing below a writable directory: refused before
    anything of the batch is written."""
    for candidate in (root, *root.parents):
        if candidate.is_dir():
            if not os.access(candidate, os.W_OK | os.X_OK):
                raise ValidationError(
                    f"--output {root}: {candidate} is not writable",
                    [],
                    hint="give a directory you can write to (it is created when missing)",
                )
            return
        if candidate.exists() or candidate.is_symlink():
            raise ValidationError(
                f"--output {root}: {candidate} is not a directory",
                [],
                hint="give a directory; it is created when missing",
            )


def define_batch(
    image: ImageRecord,
    command: list[str],
    inputs: list[Input],
    *,
    source: str,
    output_root: Path | None,
    bids_dir: Path | None = None,
    binds: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    gpu: bool = False,
    name: str | None = None,
    create: bool = True,
    batches_root: Path | None = None,
) -> Batch:
    """Expand the command for every input and create (or find) the batch directory.

    With ``create=False`` (a dry run) nothing is written.
    """
    env = dict(env or {})
    check_command(command, inputs)
    info = image_info(image)
    output_root = output_root.absolute() if output_root else None
    if output_root is not None:
        check_output_root(output_root)
    digest = definition_hash(info, command, inputs, output_root, env, binds)
    batch_id = name or f"{image.name}-{digest}"
    if not batch_id.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ValidationError(
            f"batch name '{batch_id}' has characters other than letters, digits, - _ .", []
        )
    root = (batches_root.absolute() if batches_root else batches_dir()) / batch_id
    final_root = output_root or root / "outputs"
    tasks: list[TaskSpec] = []
    for index, item in enumerate(inputs):
        out = output_dir_for(item, final_root)
        values = {
            **item.values(),
            "output_dir": str(out),
            "output_root": str(final_root),
            "task": str(index),
            "batch_id": batch_id,
        }
        tasks.append(
            TaskSpec(
                index=index,
                label=item.label,
                input=str(item.path),
                subject=item.subject,
                session=item.session,
                argv=template.expand(command, values),
                output_dir=str(out),
            )
        )
    spec = BatchSpec(
        id=batch_id,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        image=info,
        command=command,
        source=source,
        bids_dir=str(bids_dir.absolute()) if bids_dir else None,
        output_root=str(final_root),
        binds=list(binds),
        env=env,
        gpu=gpu,
        tasks=tasks,
    )
    existing = root / "batch.json"
    if existing.is_file():
        old = load_batch(str(root))
        same = [t.argv for t in old.spec.tasks] == [t.argv for t in tasks]
        same = same and old.spec.env == env and old.spec.binds == list(binds)
        if old.spec.image.digest == info.digest and same:
            return old  # the same batch again: its records decide what still has to run
        raise ValidationError(
            f"batch '{batch_id}' already exists with a different definition",
            [],
            hint="choose another --name, or remove " + str(root),
        )
    batch = Batch(root, spec)
    if create:
        batch.save()
    return batch


def load_batch(ref: str) -> Batch:
    """A batch by id (under $NEURODESK_HOME/batches) or by the path of its directory."""
    candidates = [Path(ref), batches_dir() / ref]
    for root in candidates:
        definition = root / "batch.json"
        if definition.is_file():
            try:
                spec = BatchSpec.model_validate_json(definition.read_text())
            except ValueError as exc:
                raise ValidationError(f"{definition} is not a batch definition", []) from exc
            return Batch(root.absolute(), spec)
    known = list_batches()
    raise NotFoundError(
        f"no batch '{ref}'",
        hint="see 'neurodesk batch list'"
        + (f"; newest: {known[-1].id}" if known else "; none defined yet"),
    )


def list_batches() -> list[Batch]:
    base = batches_dir()
    batches = []
    for definition in sorted(base.glob("*/batch.json")) if base.is_dir() else []:
        try:
            spec = BatchSpec.model_validate_json(definition.read_text())
        except ValueError:
            continue
        batches.append(Batch(definition.parent, spec))
    return sorted(batches, key=lambda b: b.spec.created)
