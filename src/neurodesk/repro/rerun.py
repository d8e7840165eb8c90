"""Re-running a batch task from its provenance record, and comparing what comes out.

The record says which image (name, version, build date, digest), which command, which
environment, which inputs (with their sha256) and which outputs (with theirs). A re-run:

1. finds that exact image (same digest) in the store, else says how to get it;
2. checks every input is here with the recorded hash (a record from another machine whose
   data is not here is refused, naming the first missing file);
3. runs the command through ``neurodesk exec`` (any runtime: ``--runtime``) or through the
   wrappers of an install tree (``--prefix``), with a fresh directory bound at the recorded
   output directory, so the original outputs are never touched and absolute paths in the
   command still work;
4. compares every output's sha256 with the record: same, differs, missing, or extra.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from neurodesk.errors import NeurodeskError, NotFoundError, ValidationError
from neurodesk.jobs.provenance import TaskRecord, hash_tree, sha256_file
from neurodesk.paths import Paths
from neurodesk.repro.reference import best_reference
from neurodesk.store import ImageRecord, Store

# Variables of the record that describe the machine it ran on, not the computation.
HOST_VARS = {"HOME", "TMPDIR", "TERM", "DISPLAY", "XAUTHORITY", "USER", "LOGNAME", "COLORTERM"}


@dataclass
class Comparison:
    output_dir: Path
    exit_code: int
    recorded_exit_code: int
    same: list[str] = field(default_factory=list)
    differs: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    log: Path | None = None

    @property
    def identical(self) -> bool:
        return (
            not (self.differs or self.missing or self.extra)
            and self.exit_code == self.recorded_exit_code
        )

    def to_json(self) -> dict[str, object]:
        return {
            "identical": self.identical,
            "output_dir": str(self.output_dir),
            "exit_code": self.exit_code,
            "recorded_exit_code": self.recorded_exit_code,
            "same": self.same,
            "differs": self.differs,
            "missing": self.missing,
            "extra": self.extra,
            "log": str(self.log) if self.log else None,
        }


def load_record(path: Path) -> TaskRecord:
    if path.is_dir():
        path = path / "record.json"
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise NotFoundError(
            f"no provenance record at {path}",
            hint="give a task's record.json (batches/<id>/tasks/<NNNN>/record.json)",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"cannot read {path}: {exc}", []) from None
    try:
        return TaskRecord.model_validate_json(text)
    except ValueError:
        raise ValidationError(
            f"{path} is not a neurodesk task record",
            [],
            hint="give a task's record.json (batches/<id>/tasks/<NNNN>/record.json)",
        ) from None


def recorded_image(paths: Paths, record: TaskRecord) -> ImageRecord:
    """The store's image with the record's digest (by name first, then by digest alone)."""
    info = record.image
    store = Store(paths.store)
    images = store.images()
    exact = [
        r
        for r in images
        if (r.name, r.version, r.builddate, r.digest)
        == (info.name, info.version, info.builddate, info.digest)
    ]
    same_digest = exact or [r for r in images if r.digest == info.digest]
    if same_digest:
        return same_digest[0]
    reference = info.reference or best_reference(paths, info.id, info.digest)
    raise NotFoundError(
        f"the recorded image {info.id}@{info.digest} is not in this store",
        hint=f"get exactly it first, e.g. with a lock file and 'neurodesk sync' ({reference})",
    )


def check_inputs(record: TaskRecord) -> None:
    here = os.uname().nodename
    for name, digest in sorted(record.inputs.items()):
        path = Path(name)
        where = "" if record.host == here else f" (the record is from host {record.host})"
        if not path.is_file():
            raise NotFoundError(
                f"input {path} of the record is not on this machine{where}",
                hint="put the data at the same path (or bind it there) and run again",
            )
        if sha256_file(path) != digest:
            raise ValidationError(
                f"input {path} has changed since the record was made{where}",
                [],
                hint="restore the recorded data; a re-run must start from the same inputs",
            )


def _input_dirs(record: TaskRecord) -> list[str]:
    """The fewest directories that hold every input file (bound read-only)."""
    dirs = sorted({str(Path(p).parent) for p in record.inputs})
    kept: list[str] = []
    for directory in dirs:
        if not any(directory == k or directory.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(directory)
    return kept


def _command(
    image: ImageRecord,
    record: TaskRecord,
    output: Path,
    runtime: str | None,
    prefix: Path | None,
) -> tuple[list[str], dict[str, str]]:
    binds = [f"{d}:{d}:ro" for d in _input_dirs(record)] + [f"{output}:{record.cwd}"]
    env = {k: v for k, v in record.env.items() if k not in HOST_VARS}
    if prefix is not None:
        wrapper = prefix / "containers" / image.id / "bin" / record.argv[0]
        if not os.access(wrapper, os.X_OK):
            raise NotFoundError(
                f"{image.id} has no wrapper for '{record.argv[0]}' under {prefix}",
                hint=f"install it there: neurodesk install {image.name}/{image.version} "
                f"--prefix {prefix}",
            )
        run_env = dict(os.environ)
        run_env["NEURODESK_BINDPATH"] = ",".join(binds)
        return [str(wrapper), *record.argv[1:]], run_env
    argv = [sys.executable, "-m", "neurodesk", "exec"]
    if runtime:
        argv += ["--runtime", runtime]
    for bind in binds:
        argv += ["--bind", bind]
    for key, value in sorted(env.items()):
        argv += ["--env", f"{key}={value}"]
    argv += [f"{image.name}/{image.version}/{image.builddate}", "--", *record.argv]
    return argv, dict(os.environ)


def compare(record: TaskRecord, output: Path) -> tuple[list[str], list[str], list[str], list[str]]:
    same, differs, missing = [], [], []
    expected: set[str] = set()
    for name, digest in sorted(record.outputs.items()):
        rel = os.path.relpath(name, record.cwd)
        expected.add(rel)
        path = output / rel
        if not path.is_file():
            missing.append(rel)
        elif sha256_file(path) == digest:
            same.append(rel)
        else:
            differs.append(rel)
    extra = sorted(
        os.path.relpath(p, output)
        for p in hash_tree(output)
        if os.path.relpath(p, output) not in expected
    )
    return same, differs, missing, extra


def rerun(
    paths: Paths,
    record: TaskRecord,
    output: Path | None = None,
    runtime: str | None = None,
    prefix: Path | None = None,
) -> Comparison:
    image = recorded_image(paths, record)
    check_inputs(record)
    if output is None:
        base = paths.work / "rerun"
        base.mkdir(parents=True, exist_ok=True)
        output = Path(tempfile.mkdtemp(prefix=f"{record.batch_id}-{record.task}-", dir=base))
    elif output.exists() and any(output.iterdir()):
        raise NeurodeskError(
            f"{output} is not empty", hint="give a new or empty directory for the re-run's outputs"
        )
    output.mkdir(parents=True, exist_ok=True)
    output = output.absolute()
    argv, env = _command(image, record, output, runtime, prefix)
    log_path = paths.logs / "rerun" / f"{output.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as handle:
        proc = subprocess.run(
            argv, cwd=output, env=env, stdin=subprocess.DEVNULL, stdout=handle, stderr=handle,
            check=False,
        )  # fmt: skip
    same, differs, missing, extra = compare(record, output)
    result = Comparison(output, proc.returncode, record.exit_code, same, differs, missing, extra)
    result.log = log_path
    return result
