"""Unpacked image directories (Apptainer sandboxes, CVMFS ``<id>.simg/``) and their metadata.

Apptainer keeps an image's environment as shell snippets in ``/.singularity.d/env/*.sh`` and
its labels in ``/.singularity.d/labels.json``. We read the simple forms those files take
(``export K="v"``, ``export K=${K:-"v"}``) without running any shell code from the image.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

_ASSIGN = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_DEFAULT = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*):?-(.*)\}$")


def _value(raw: str) -> str | None:
    try:
        words = shlex.split(raw, comments=True)
    except ValueError:
        return None
    if len(words) != 1:
        return "" if not words else None
    value = words[0]
    match = _DEFAULT.match(value)
    if match:  # ${K:-"default"}: the default (its quotes went with the split above)
        value = match.group(2)
    return None if "$" in value or "`" in value else value


def read_env(rootfs: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    env_dir = rootfs / ".singularity.d" / "env"
    if not env_dir.is_dir():
        return env
    for script in sorted(env_dir.glob("*.sh")):
        if script.is_symlink() or not script.is_file():
            continue
        for line in script.read_text(errors="replace").splitlines():
            match = _ASSIGN.match(line)
            if match:
                value = _value(match.group(2))
                if value is not None:
                    env[match.group(1)] = value
    return env


def read_labels(rootfs: Path) -> dict[str, str]:
    path = rootfs / ".singularity.d" / "labels.json"
    if path.is_symlink() or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def image_config(rootfs: Path, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """An OCI-style config for a root filesystem, from its Apptainer metadata."""
    env = read_env(rootfs)
    return {
        "config": {
            "Env": [f"{k}={v}" for k, v in env.items()],
            "Labels": {**read_labels(rootfs), **(labels or {})},
        }
    }


def looks_like_rootfs(path: Path) -> bool:
    return path.is_dir() and any(
        (path / entry).exists() or (path / entry).is_symlink()
        for entry in ("bin", "usr", ".singularity.d")
    )
