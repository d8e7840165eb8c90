"""The lock file: the exact set of tools a project used, by name, version, build date, digest and
the source each came from.

``neurodesk.lock`` is JSON::

    {
      "schema_version": "neurodesk.lock/1",
      "created": "2026-11-30T12:00:00+00:00",
      "neurodesk": "0.1.0",
      "tools": [
        {"name": "dcm2niix", "version": "1.0.20220720", "builddate": "20261121",
         "id": "dcm2niix_1.0.20220720_20261121", "digest": "sha256:...",
         "reference": "reg.lab:5000/neurodesk/dcm2niix_1.0.20220720:20261121@sha256:...",
         "source": {"kind": "registry", "location": "reg.lab:5000/neurodesk", "name": "lab"}}
      ]
    }

The schema version is ``neurodesk.lock/<N>``. Reading a file of an older version runs it through
``CONVERTERS`` (one function per step N → N+1, applied in order) before validation, so a lock
written today stays readable when the format grows; a file of a newer version is refused with a
hint to upgrade.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, field_validator

from neurodesk import __version__
from neurodesk.errors import NotFoundError, ValidationError
from neurodesk.repro.reference import Reference, check_digest
from neurodesk.store.atomic import write_text

SCHEMA_PREFIX = "neurodesk.lock/"
CURRENT = 1
LOCK_SCHEMA = f"{SCHEMA_PREFIX}{CURRENT}"
DEFAULT_NAME = "neurodesk.lock"

SourceKind = Literal["registry", "tree", "http", "store"]
# step N → N+1; each takes and returns the raw JSON object. Empty while there is only version 1.
CONVERTERS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


class LockedSource(BaseModel):
    """Where the image came from: a registry/tree/HTTP location, or ``store`` (built here)."""

    model_config = ConfigDict(extra="forbid")

    kind: SourceKind
    location: str = ""
    name: str = ""  # the source's name in config.yaml, when it had one


class LockedTool(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    version: str
    builddate: str
    id: str
    digest: str
    reference: str
    source: LockedSource

    @field_validator("digest")
    @classmethod
    def _digest(cls, value: str) -> str:
        try:
            return check_digest(value)
        except ValidationError as exc:
            raise ValueError(exc.message) from None

    @field_validator("reference")
    @classmethod
    def _reference(cls, value: str) -> str:
        try:
            Reference.parse(value)
        except ValidationError as exc:
            raise ValueError(exc.message) from None
        return value

    @property
    def spec(self) -> str:
        return f"{self.name}/{self.version}/{self.builddate}"


class LockFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: str = LOCK_SCHEMA
    created: str
    neurodesk: str
    tools: list[LockedTool]

    @classmethod
    def new(cls, tools: list[LockedTool]) -> LockFile:
        return cls(
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            neurodesk=__version__,
            tools=sorted(tools, key=lambda t: (t.name, t.version, t.builddate)),
        )

    def to_text(self) -> str:
        return self.model_dump_json(indent=2) + "\n"

    def save(self, path: Path) -> None:
        write_text(path, self.to_text())


def _schema_number(value: object, path: Path) -> int:
    text = str(value) if isinstance(value, str) else ""
    number = text.removeprefix(SCHEMA_PREFIX)
    if not text.startswith(SCHEMA_PREFIX) or not number.isdigit():
        raise ValidationError(
            f"{path} is not a neurodesk lock file (schema_version is {value!r})",
            [],
            hint="make one with 'neurodesk lock -o FILE'",
        )
    return int(number)


def upgrade(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """Bring raw lock JSON of any older schema version to the current one."""
    number = _schema_number(data.get("schema_version"), path)
    if number > CURRENT:
        raise ValidationError(
            f"{path} is lock format {number}, this neurodesk reads up to {CURRENT}",
            [],
            hint="upgrade neurodesk to read it",
        )
    while number < CURRENT:
        data = CONVERTERS[number](data)
        number += 1
        data["schema_version"] = f"{SCHEMA_PREFIX}{number}"
    return data


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc).replace(".[", "[")


def parse_lock(text: str, path: Path) -> LockFile:
    try:
        data = json.loads(text)
    except ValueError:
        raise ValidationError(
            f"{path} is not a neurodesk lock file (not JSON)",
            [],
            hint="make one with 'neurodesk lock -o FILE'",
        ) from None
    if not isinstance(data, dict):
        raise ValidationError(
            f"{path} is not a neurodesk lock file (not a JSON object)",
            [],
            hint="make one with 'neurodesk lock -o FILE'",
        )
    data = upgrade(data, path)
    try:
        return LockFile.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = [f"{path.name}: {_where(e['loc'])}: {e['msg']}" for e in exc.errors()]
        message = problems[0] if len(problems) == 1 else f"{path} has {len(problems)} problems"
        raise ValidationError(message, problems, hint="fix the file or make it again") from None


def load_lock(path: Path) -> LockFile:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise NotFoundError(
            f"lock file {path} does not exist", hint="make one with 'neurodesk lock -o FILE'"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"cannot read lock file {path}: {exc}", []) from None
    return parse_lock(text, path)
