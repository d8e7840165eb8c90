"""Provenance: one JSON record per task run, and the test that a task's outputs are complete.

A record says exactly what ran (image name, version, digest; runtime and its version; argv and
environment), on what (sha256 of every input file) and what came out (sha256 of every output
file), when, where and with which exit code.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from pydantic import BaseModel

from neurodesk.jobs.hotpath import RECORD_SCHEMA, hash_tree, sha256_file
from neurodesk.store.atomic import write_text

__all__ = [
    "RECORD_SCHEMA",
    "ImageInfo",
    "RuntimeInfo",
    "SchedulerInfo",
    "TaskRecord",
    "hash_tree",
    "is_complete",
    "outputs_intact",
    "runtime_version",
    "sha256_file",
]


class ImageInfo(BaseModel):
    name: str
    version: str
    builddate: str
    id: str
    digest: str
    # resolvable: HOST/NS/<name>_<version>:<date>@sha256:... or <id>@sha256:... (repro.reference)
    reference: str = ""


class RuntimeInfo(BaseModel):
    name: str
    version: str
    argv: list[str]  # the full runtime command line, for re-running by hand


class SchedulerInfo(BaseModel):
    name: str  # "local" or "slurm"
    job_id: str | None = None
    array_task_id: str | None = None


class TaskRecord(BaseModel):
    schema_version: str = RECORD_SCHEMA
    batch_id: str
    task: int
    label: str
    image: ImageInfo
    runtime: RuntimeInfo
    argv: list[str]
    env: dict[str, str]
    cwd: str
    inputs: dict[str, str]  # absolute path → "sha256:<hex>"
    outputs: dict[str, str]
    start: str  # ISO 8601, UTC
    end: str
    duration_s: float
    exit_code: int
    host: str
    scheduler: SchedulerInfo
    log: str

    def save(self, path: Path) -> None:
        write_text(path, self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> TaskRecord | None:
        """The record at ``path``, or None when there is none or it is unreadable."""
        try:
            return cls.model_validate_json(path.read_text())
        except (OSError, ValueError):
            return None


@functools.cache
def runtime_version(program: str) -> str:
    """``bwrap --version`` → "0.8.0" (asked once per process)."""
    try:
        out = subprocess.run(
            [program, "--version"], capture_output=True, text=True, check=False, timeout=10
        ).stdout
    except OSError:
        return "unknown"
    words = out.split()
    return words[-1] if words else "unknown"


def outputs_intact(record: TaskRecord) -> bool:
    """True when every output the record lists still exists with the same hash."""
    for name, digest in record.outputs.items():
        path = Path(name)
        if not path.is_file() or sha256_file(path) != digest:
            return False
    return True


def is_complete(record: TaskRecord | None, image_digest: str, argv: list[str]) -> bool:
    """A task need not run again: it succeeded with this image and command, outputs intact."""
    return (
        record is not None
        and record.exit_code == 0
        and record.image.digest == image_digest
        and record.argv == argv
        and outputs_intact(record)
    )
