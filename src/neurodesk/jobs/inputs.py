"""Where a batch's inputs come from: a list file, a glob, or a BIDS dataset's subjects/sessions.

Each input becomes one task; its ``values`` fill the placeholders of the command line.
"""

from __future__ import annotations

import glob as globlib
from dataclasses import dataclass, field
from pathlib import Path

from neurodesk.errors import NotFoundError, ValidationError

# Extensions removed as a whole for {input_stem} (sub-01_T1w.nii.gz → sub-01_T1w).
COMPOUND_SUFFIXES = (".nii.gz", ".tar.gz", ".tar.bz2", ".tar.xz", ".mgz.gz")


@dataclass(frozen=True)
class Input:
    """One unit of work: a file or directory plus what is known about it."""

    path: Path
    label: str  # short, unique name: "sub-01_ses-02" or the file name
    subject: str | None = None  # BIDS label without the "sub-" prefix
    session: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def values(self) -> dict[str, str]:
        """Placeholder values that depend on this input alone."""
        values = {
            "input": str(self.path),
            "input_name": self.path.name,
            "input_stem": stem(self.path),
            "input_dir": str(self.path.parent),
            "label": self.label,
            **self.extra,
        }
        if self.subject is not None:
            values["subject"] = self.subject
        if self.session is not None:
            values["session"] = self.session
        return values


def stem(path: Path) -> str:
    name = path.name
    for suffix in COMPOUND_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem if path.is_file() or "." in name else name


def from_list(list_file: Path) -> list[Input]:
    """One input per non-empty, non-comment line; relative paths are relative to the list."""
    if not list_file.is_file():
        raise NotFoundError(f"input list {list_file} does not exist", hint="give a text file")
    inputs: list[Input] = []
    for line in list_file.read_text().splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        path = Path(text).expanduser()
        path = (path if path.is_absolute() else list_file.parent / path).absolute()
        if not path.exists():
            raise NotFoundError(
                f"input {path} (line '{text}' of {list_file}) does not exist",
                hint="fix or remove that line",
            )
        inputs.append(Input(path, path.name))
    if not inputs:
        raise ValidationError(
            f"input list {list_file} names no inputs", [], hint="one path per line"
        )
    return unique_labels(inputs)


def from_glob(pattern: str) -> list[Input]:
    matches = sorted(globlib.glob(str(Path(pattern).expanduser()), recursive=True))
    if not matches:
        raise NotFoundError(
            f"the glob '{pattern}' matches no files",
            hint="check the pattern; quote it so the shell does not expand it",
        )
    return unique_labels([Input(Path(m).absolute(), Path(m).name) for m in matches])


def from_bids(
    root: Path, subjects: tuple[str, ...] = (), sessions: tuple[str, ...] = ()
) -> list[Input]:
    """One input per ``sub-*/ses-*`` directory, or per ``sub-*`` when there are no sessions."""
    root = root.expanduser().absolute()
    if not root.is_dir():
        raise NotFoundError(f"BIDS directory {root} does not exist", hint="give a dataset root")
    wanted = {s.removeprefix("sub-") for s in subjects}
    wanted_ses = {s.removeprefix("ses-") for s in sessions}
    inputs: list[Input] = []
    subject_dirs = sorted(p for p in root.glob("sub-*") if p.is_dir())
    if not subject_dirs:
        raise NotFoundError(
            f"no sub-* directories in {root}",
            hint="give the dataset root (or its sourcedata/) that holds sub-<label>/ folders",
        )
    for sub_dir in subject_dirs:
        subject = sub_dir.name.removeprefix("sub-")
        if wanted and subject not in wanted:
            continue
        session_dirs = sorted(p for p in sub_dir.glob("ses-*") if p.is_dir())
        if not session_dirs:
            if not wanted_ses:
                inputs.append(Input(sub_dir, sub_dir.name, subject, None, {"bids_dir": str(root)}))
            continue
        for ses_dir in session_dirs:
            session = ses_dir.name.removeprefix("ses-")
            if wanted_ses and session not in wanted_ses:
                continue
            label = f"{sub_dir.name}_{ses_dir.name}"
            inputs.append(Input(ses_dir, label, subject, session, {"bids_dir": str(root)}))
    if not inputs:
        chosen = ", ".join(sorted(wanted | {f"ses-{s}" for s in wanted_ses}))
        raise NotFoundError(
            f"no subject/session of {root} matches {chosen}",
            hint="check --subject/--session against the sub-*/ses-* folders",
        )
    return inputs


def unique_labels(inputs: list[Input]) -> list[Input]:
    """Make labels unique (two files named T1w.nii.gz in different folders) by numbering."""
    seen: dict[str, int] = {}
    result = []
    for item in inputs:
        count = seen.get(item.label, 0)
        seen[item.label] = count + 1
        label = item.label if count == 0 else f"{item.label}.{count}"
        result.append(Input(item.path, label, item.subject, item.session, item.extra))
    return result


def check_output_root(output_root: str, inputs: list[str]) -> None:
    """Refuse an output root inside an input (or equal to one): inputs are never written."""
    root = Path(output_root).resolve()
    for item in inputs:
        source = Path(item).resolve()
        if root == source or root.is_relative_to(source):
            raise ValidationError(
                f"the output root {output_root} lies inside the input {item}",
                [f"input {item} is bound read-only; outputs cannot go below it"],
                hint="choose an --output directory outside the input data",
            )
