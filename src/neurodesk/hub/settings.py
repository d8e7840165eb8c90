"""``neurodesk-hub.yaml``: the settings a course organiser edits, and their validation.

Every problem is reported as one line naming the key (``limits.memory: ...``), so an organiser
can fix the file without reading a traceback. Sizes are ``512M``/``4G``, durations are seconds or
``30m``/``2h``/``1d``; relative paths are relative to the deployment directory.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from neurodesk.errors import ValidationError as NdValidationError

SETTINGS_FILE = "neurodesk-hub.yaml"
USER_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?$", re.IGNORECASE)
DURATION = re.compile(r"^(\d+)\s*([smhd]?)$")
SLURM_TIME = re.compile(r"^(\d+-)?\d{1,2}(:\d{2}){0,2}$")
UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

Authenticator = Literal["firstuse", "native", "pam", "oauth"]
SpawnerKind = Literal["local", "systemd", "slurm", "kubernetes"]


def parse_size(value: str | int) -> int:
    """``4G`` → bytes; a bare number is bytes."""
    match = SIZE.match(str(value).strip())
    if not match:
        raise ValueError(f"{value!r} is not a size; write e.g. 512M or 4G")
    return int(float(match.group(1)) * UNITS[match.group(2).upper()])


def parse_duration(value: str | int) -> int:
    """``2h`` → 7200 seconds; a bare number is seconds."""
    match = DURATION.match(str(value).strip())
    if not match:
        raise ValueError(f"{value!r} is not a duration; write seconds or e.g. 30m, 2h")
    return int(match.group(1)) * SECONDS[match.group(2)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(_Strict):
    memory: str = "4G"
    cpus: float = Field(default=1.0, gt=0, le=512)
    max_servers: int = Field(default=0, ge=0, description="0: no limit")

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        if parse_size(value) < 64 * 1024**2:
            raise ValueError(f"{value!r} is too small for a server; give at least 256M")
        return value

    @property
    def memory_bytes(self) -> int:
        return parse_size(self.memory)


class Slurm(_Strict):
    partition: str = ""
    time: str = "04:00:00"
    memory: str = ""  # empty: limits.memory
    cpus: int = Field(default=0, ge=0)  # 0: ceil(limits.cpus)
    extra: list[str] = Field(default_factory=list)  # more #SBATCH options, e.g. --gres=gpu:1

    @field_validator("time")
    @classmethod
    def _time(cls, value: str) -> str:
        if not SLURM_TIME.match(value):
            raise ValueError(f"{value!r} is not a SLURM time limit; write e.g. 04:00:00 or 1-00")
        return value

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        if value:
            parse_size(value)
        return value

    @field_validator("extra")
    @classmethod
    def _extra(cls, value: list[str]) -> list[str]:
        for option in value:
            if not option.startswith("--") or "\n" in option:
                raise ValueError(f"{option!r} must be one sbatch option starting with --")
        return value


class Kubernetes(_Strict):
    image: str = "ghcr.io/example/neurodesk-hub-singleuser:latest"
    storage_class: str = ""
    site_claim: str = "neurodesk-site"
    data_claim: str = "neurodesk-data"


class OAuth(_Strict):
    provider: Literal["github", "gitlab", "google", "generic"] = "generic"
    client_id: str
    client_secret_file: str  # a file only the organiser can read, not the secret itself
    callback_url: str
    authorize_url: str = ""
    token_url: str = ""
    userdata_url: str = ""
    username_claim: str = "preferred_username"


class SpawnerSettings(_Strict):
    kind: SpawnerKind = "local"
    slurm: Slurm = Field(default_factory=Slurm)
    kubernetes: Kubernetes = Field(default_factory=Kubernetes)


class HubSettings(_Strict):
    title: str = "Neurodesk workshop"
    # The Python users' servers run with (neurodesk[hub] installed in it, usable by every
    # account, e.g. /opt/neurodesk/venv/bin/python); empty: the hub's own.
    python: str = ""
    bind: str = "127.0.0.1:8000"
    hub_connect_ip: str = ""  # the address compute nodes reach the hub at (slurm)
    authenticator: Authenticator = "firstuse"
    users: list[str] = Field(default_factory=list)
    admins: list[str] = Field(default_factory=list)
    oauth: OAuth | None = None
    tools: list[str] = Field(default_factory=list)
    source: str = ""  # where prepare fetches tools from (default: the site's config.yaml)
    shared_data: str = "data"
    scratch: str = "scratch"
    limits: Limits = Field(default_factory=Limits)
    idle_timeout: str | int = "1h"
    spawner: SpawnerSettings = Field(default_factory=SpawnerSettings)

    @field_validator("users", "admins")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not USER_NAME.match(name):
                raise ValueError(
                    f"{name!r} is not a valid user name (lowercase letters, digits, _ and -, "
                    "starting with a letter, at most 32)"
                )
        if len(set(value)) != len(value):
            raise ValueError("a user is listed twice")
        return value

    @field_validator("python")
    @classmethod
    def _python(cls, value: str) -> str:
        if value and not value.startswith("/"):
            raise ValueError(f"{value!r} must be an absolute path to a python executable")
        return value

    @field_validator("bind")
    @classmethod
    def _bind(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{value!r} must be ADDRESS:PORT, e.g. 127.0.0.1:8000 or 0.0.0.0:443")
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError as exc:
            raise ValueError(f"{host!r} is not an IP address") from exc
        return value

    @field_validator("idle_timeout")
    @classmethod
    def _idle(cls, value: str | int) -> str | int:
        if 0 < parse_duration(value) < 10:
            raise ValueError("must be at least 10 seconds (or 0 to never cull)")
        return value

    @field_validator("tools")
    @classmethod
    def _tools(cls, value: list[str]) -> list[str]:
        for tool in value:
            if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._+-]*(/[A-Za-z0-9._+-]+){0,2}$", tool):
                raise ValueError(f"{tool!r} is not NAME or NAME/VERSION")
        return value

    @property
    def idle_seconds(self) -> int:
        return parse_duration(self.idle_timeout)

    @property
    def cull_every(self) -> int:
        """How often the culler looks: a quarter of the timeout, between 5 s and 5 min."""
        return max(5, min(300, (self.idle_seconds or 3600) // 4))

    @property
    def host(self) -> str:
        return self.bind.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.bind.rpartition(":")[2])

    def check_consistent(self) -> list[str]:
        """Problems that involve several keys."""
        problems = []
        if self.authenticator == "oauth" and self.oauth is None:
            problems.append("oauth: required when authenticator is oauth (client_id, ...)")
        for admin in self.admins:
            if self.users and admin not in self.users:
                problems.append(f"admins: {admin!r} is not in users")
        if self.spawner.kind == "slurm" and not self.hub_connect_ip:
            problems.append(
                "hub_connect_ip: required for spawner slurm (the address compute nodes reach "
                "the hub at, e.g. the login node's IP)"
            )
        return problems


def require_users(settings: HubSettings, origin: str) -> None:
    """Before a start: authenticators that admit only listed users need some listed."""
    if settings.authenticator in ("pam", "firstuse", "oauth") and not settings.users:
        problem = (
            f"{origin}: users: list who may log in (authenticator {settings.authenticator} "
            "admits only them)"
        )
        raise NdValidationError(problem, [problem])


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc if not str(part).startswith("function-"))


def _message(error: Any) -> str:
    message = str(error["msg"])
    message = message.removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return "unknown setting (check its spelling against 'neurodesk hub init')"
    if error["type"] == "literal_error":
        return message.replace("Input should be", "must be")
    return message


def parse_settings(data: object, origin: str = SETTINGS_FILE) -> HubSettings:
    """Validate already-parsed YAML; every problem is one line ``origin: key: what``."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise NdValidationError(
            f"{origin}: must be a mapping of settings", [f"{origin}: must be a mapping"]
        )
    try:
        settings = HubSettings.model_validate(data)
    except ValidationError as exc:
        problems = [f"{origin}: {_location(e['loc'])}: {_message(e)}" for e in exc.errors()]
        raise NdValidationError(
            problems[0] if len(problems) == 1 else f"{origin}: {len(problems)} problems",
            problems,
            hint=None,
        ) from None
    problems = [f"{origin}: {p}" for p in settings.check_consistent()]
    if problems:
        raise NdValidationError(
            problems[0] if len(problems) == 1 else f"{origin}: {len(problems)} problems", problems
        )
    return settings


def load_settings(directory: Path) -> HubSettings:
    path = directory / SETTINGS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NdValidationError(
            f"{path} does not exist",
            [f"{path} does not exist"],
            hint=f"create the deployment with: neurodesk hub init {directory}",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NdValidationError(f"{path}: cannot read: {exc}", [f"{path}: {exc}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = f"{path}:{where} is not valid YAML: {getattr(exc, 'problem', exc)}"
        raise NdValidationError(problem, [problem]) from None
    return parse_settings(data, str(path))
