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
    catalog_url: https://...            # upstream's apps.json ('neurodesk update'); or
                                        # $NEURODESK_CATALOG_URL
    recipe_url: https://.../{name}/build.yaml   # upstream recipes, for 'neurodesk info'
    defaults:                           # the built-in channels, by name
      cvmfs: false                      # removed
      object-storage:                   # re-pointed (any SourceConfig field but name)
        mirrors: [http://cache.lab/neurodesk/]
    low_speed_limit: 1024               # bytes/s: a transfer slower than this ...
    low_speed_time: 30                  # ... over this many seconds is abandoned (next mirror)
    deadline: 21600                     # seconds one request to one mirror may take in all
    max_unpack_ratio: 20                # an image unpacks to at most 20x its compressed size,
    max_unpack_size: 64G                # ... and never more than this,
    max_unpack_files: 2000000           # ... in at most this many files

The sources you list are tried first, by kind (trees, registries, HTTP), in file order within a
kind; then the built-in channels in upstream's order (:data:`BUILTIN`): CVMFS, SIF artifacts in
registries, SIF files on object storage, registry images.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from neurodesk.errors import NeurodeskError
from neurodesk.errors import ValidationError as NdValidationError
from neurodesk.image.limits import parse_size
from neurodesk.sources.http import HttpSettings

Kind = Literal["tree", "registry", "http", "sif-registry", "sif-http", "sif-file"]
KIND_ORDER: dict[str, int] = {
    "store": 0,
    "tree": 1,
    "sif-registry": 2,
    "sif-http": 3,
    "registry": 4,
    "http": 5,
    "sif-file": 6,
}
# How a registry names images: ours ``NS/<name>_<version>:<date>``, upstream's
# ``NS/<name>:<version>_<date>`` (quay.io/neurodesk, ghcr.io/neurodesk).
Naming = Literal["neurodesk", "upstream"]

DEFAULT_CATALOG_URL = (
    "https://raw.githubusercontent.com/NeuroDesk/neurocommand/main/neurodesk/apps.json"
)
DEFAULT_RECIPE_URL = (
    "https://raw.githubusercontent.com/NeuroDesk/neurocontainers/main/recipes/{name}/build.yaml"
)
_SWIFT = "https://object-store.rc.nectar.org.au/v1/AUTH_dead991e1fa847e3afcca2d3a7041f5d/neurodesk/"
_CDN = "https://d15yxasja65rk8.cloudfront.net/"


class SourceConfig(BaseModel):
    """One source; several mirrors of the same content are probed and failed over."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    kind: Kind
    mirrors: list[str] = Field(default_factory=list)
    url: str | None = None
    insecure: bool = False
    naming: Naming = "neurodesk"
    builtin: bool = Field(default=False, exclude=True)

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
    catalog_url: str = DEFAULT_CATALOG_URL
    recipe_url: str = DEFAULT_RECIPE_URL
    defaults: dict[str, dict[str, Any] | Literal[False]] = Field(default_factory=dict)
    low_speed_limit: int = Field(default=1024, ge=0)
    low_speed_time: float = Field(default=30.0, gt=0)
    deadline: float = Field(default=21600.0, gt=0)
    # Decompression limits, read by neurodesk.image.limits (which also documents them).
    max_unpack_ratio: float | None = Field(default=None, gt=0)
    max_unpack_size: int | str | None = None
    max_unpack_files: int | None = Field(default=None, gt=0)

    @field_validator("max_unpack_size")
    @classmethod
    def _size(cls, value: int | str | None) -> int | str | None:
        if value is not None:
            try:
                parse_size(value, "max_unpack_size")
            except NeurodeskError as exc:
                raise ValueError(exc.message) from None
        return value

    # install SIFs from HTTP(S) lazily (mounted over the network, fetched block by block)
    lazy: bool = False
    # keep what lazy images read in httpdirfs's block cache under $NEURODESK_HOME/cache (needs
    # httpdirfs 1.2.10+); it fetches 1 MB segments (and the next one) instead of single blocks
    lazy_cache: bool = False

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        names = [s.name for s in self.sources]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"source names must be unique: {', '.join(duplicates)}")
        return self

    @model_validator(mode="after")
    def _known_defaults(self) -> Config:
        unknown = sorted(set(self.defaults) - {b.name for b in BUILTIN})
        if unknown:
            known = ", ".join(b.name for b in BUILTIN)
            raise ValueError(f"no built-in source named {', '.join(unknown)} (there are: {known})")
        for name, override in self.defaults.items():
            if override is not False:
                self.builtin(name)  # validates the override now, not at first use
        return self

    def http_settings(self) -> HttpSettings:
        return HttpSettings(
            timeout=self.timeout,
            low_speed_limit=self.low_speed_limit,
            low_speed_time=self.low_speed_time,
            deadline=self.deadline,
        )

    def ordered(self) -> list[SourceConfig]:
        """The sources listed in ``sources:``, by kind then file order."""
        return sorted(self.sources, key=lambda s: KIND_ORDER[s.kind])

    def builtin(self, name: str) -> SourceConfig | None:
        """Built-in channel ``name`` with its override from ``defaults:``, or None if removed."""
        base = next(b for b in BUILTIN if b.name == name)
        override = self.defaults.get(name, {})
        if override is False:
            return None
        data = {**base.model_dump(), **override, "name": name}
        if "url" in override or "mirrors" in override:
            data["mirrors"] = list(override.get("mirrors") or [])
        return SourceConfig.model_validate(data).model_copy(update={"builtin": True})

    def channels(self) -> list[SourceConfig]:
        """Every source to try, in order: the listed ones, then the built-in channels."""
        listed = {s.name for s in self.sources}
        builtins = [self.builtin(b.name) for b in BUILTIN if b.name not in listed]
        return [*self.ordered(), *(b for b in builtins if b is not None)]

    def named(self, name: str) -> SourceConfig | None:
        return next((s for s in self.channels() if s.name == name), None)

    def catalog_source(self) -> str:
        return os.environ.get("NEURODESK_CATALOG_URL") or self.catalog_url


# Upstream's channels, in the order upstream's installer tries them (DESIGN.md).
BUILTIN: tuple[SourceConfig, ...] = (
    SourceConfig(name="cvmfs", kind="tree", mirrors=["/cvmfs/neurodesk.ardc.edu.au"]),
    SourceConfig(
        name="sif-artifacts",
        kind="sif-registry",
        mirrors=["quay.io/neurodesk", "ghcr.io/neurodesk"],
        naming="upstream",
    ),
    SourceConfig(
        name="object-storage",
        kind="sif-http",
        mirrors=[_SWIFT, _CDN, _SWIFT + "temporary-builds-new/", _CDN + "temporary-builds-new/"],
    ),
    SourceConfig(
        name="registry-images",
        kind="registry",
        mirrors=["quay.io/neurodesk", "ghcr.io/neurodesk"],
        naming="upstream",
    ),
)


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
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise NeurodeskError(
            f"{path}: byte {exc.start} is not UTF-8 text", hint="save the file as UTF-8"
        ) from None
    except OSError as exc:
        raise NeurodeskError(f"{path} cannot be read: {exc.strerror}") from None
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
