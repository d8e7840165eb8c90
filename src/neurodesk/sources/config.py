"""``$NEURODESK_HOME/config.yaml``: the ordered list of sources images are fetched from.

Example::

    sources:
      - name: cvmfs
        kind: tree                      # a CVMFS-layout tree, used in place
        mirrors: [/cvmfs/neurodesk.ardc.edu.au]
      - name: lab
        kind: registry                  # an OCI registry: HOST[:PORT]/NAMESPACE
        mirrors: [reg1.lab:5000/neurodesk, reg2.lab:5000/neurodesk]
        insecure: true                  # plain HTTP
      - name: files
        kind: http                      # an HTTP server with an OCI layout (or .tar archive)
        mirrors: [http://files.lab/neurodesk/]
    timeout: 10                         # seconds before a stalled mirror is given up
    retries: 3                          # attempts per mirror before failing over

Sources are tried by kind (local store, trees, registries, HTTP), in file order within a kind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from neurodesk.errors import NeurodeskError
from neurodesk.errors import ValidationError as NdValidationError

Kind = Literal["tree", "registry", "http"]
KIND_ORDER: dict[str, int] = {"store": 0, "tree": 1, "registry": 2, "http": 3}


class SourceConfig(BaseModel):
    """One source; several mirrors of the same content are probed and failed over."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    kind: Kind
    mirrors: list[str] = Field(default_factory=list)
    url: str | None = None
    insecure: bool = False

    @model_validator(mode="after")
    def _one_location(self) -> SourceConfig:
        if self.url:
            self.mirrors = [self.url, *self.mirrors]
            self.url = None
        if not self.mirrors:
            raise ValueError("give 'mirrors' (a list) or 'url'")
        return self


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: list[SourceConfig] = Field(default_factory=list)
    timeout: float = Field(default=10.0, gt=0)
    retries: int = Field(default=3, ge=1, le=20)
    # install SIFs from HTTP(S) lazily (mounted over the network, fetched block by block)
    lazy: bool = False

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        names = [s.name for s in self.sources]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"source names must be unique: {', '.join(duplicates)}")
        return self

    def ordered(self) -> list[SourceConfig]:
        return sorted(self.sources, key=lambda s: KIND_ORDER[s.kind])

    def named(self, name: str) -> SourceConfig | None:
        return next((s for s in self.sources if s.name == name), None)


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def load_config(path: Path) -> Config:
    """The config at ``path``, or the defaults when it does not exist."""
    if not path.is_file():
        return Config()
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise NeurodeskError(
            f"{path}:{line} is not valid YAML", hint="fix the syntax or remove the file"
        ) from None
    if not isinstance(data, dict):
        raise NeurodeskError(f"{path} must be a mapping with a 'sources:' list")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = [f"{path}: {_where(e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise NdValidationError(
            f"{path}: {len(problems)} problem(s); first: {problems[0].split(': ', 1)[1]}",
            problems,
            hint="see README.md, section 'Sources, mirrors and publishing', for the format",
        ) from None
