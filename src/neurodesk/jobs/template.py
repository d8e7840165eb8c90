"""Placeholders in a batch's command line: ``{subject}``, ``{input}``, ``{output_dir}``, ...

Python's format syntax (``{{`` for a literal brace); only plain names are allowed, so a
command can never reach into objects, and every name is checked before anything runs.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence

from neurodesk.errors import ValidationError

PLACEHOLDERS: dict[str, str] = {
    "input": "the input file or directory (absolute path)",
    "input_name": "its file name",
    "input_stem": "its file name without extension (.nii.gz counts as one)",
    "input_dir": "the directory that holds it",
    "label": "a short unique name for the task (sub-01_ses-02, or the file name)",
    "subject": "BIDS subject label without 'sub-' (--bids only)",
    "session": "BIDS session label without 'ses-' (--bids with sessions only)",
    "bids_dir": "the BIDS dataset root (--bids only)",
    "output_dir": "this task's output directory (created before it runs)",
    "output_root": "the batch output directory (--output)",
    "task": "the task index, 0-based",
    "batch_id": "the batch id",
}


def fields(argv: Sequence[str]) -> list[str]:
    """The placeholder names used in ``argv``, in order; malformed braces are an error."""
    names: list[str] = []
    for word in argv:
        try:
            parsed = list(string.Formatter().parse(word))
        except ValueError as exc:
            raise ValidationError(
                f"cannot read the placeholders in '{word}': {exc}",
                [],
                hint="write a literal brace as {{ or }}",
            ) from exc
        for _literal, name, spec, conversion in parsed:
            if name is None:
                continue
            if spec or conversion or not name.isidentifier():
                raise ValidationError(
                    f"placeholder '{{{name}{'!' + conversion if conversion else ''}"
                    f"{':' + spec if spec else ''}}}' in '{word}' is not a plain name",
                    [],
                    hint="use e.g. {subject}; write a literal brace as {{ or }}",
                )
            names.append(name)
    return names


def check(argv: Sequence[str], available: Mapping[str, str], source: str) -> None:
    """Every placeholder must be known and have a value for this kind of input."""
    for name in fields(argv):
        if name not in PLACEHOLDERS:
            raise ValidationError(
                f"unknown placeholder {{{name}}} in the command",
                [],
                hint=f"known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
                "; write a literal brace as {{ or }}",
            )
        if name not in available:
            raise ValidationError(
                f"placeholder {{{name}}} has no value for input {source}",
                [],
                hint=f"{{{name}}} is {PLACEHOLDERS[name]}",
            )


def expand(argv: Sequence[str], values: Mapping[str, str]) -> list[str]:
    return [word.format_map(values) for word in argv]
