"""Registry credentials from the standard auth files, when a user has them.

Looked for in this order, the first file that names the registry wins (as podman, skopeo and
buildah do): ``$REGISTRY_AUTH_FILE``, ``$XDG_RUNTIME_DIR/containers/auth.json``,
``~/.docker/config.json``. Each holds ``{"auths": {"<host>": {"auth": base64("user:pass")}}}``;
keys may also be ``https://<host>`` or ``<host>/<namespace>``. Credential helpers are not run.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path


def auth_files() -> list[Path]:
    files = []
    if os.environ.get("REGISTRY_AUTH_FILE"):
        files.append(Path(os.environ["REGISTRY_AUTH_FILE"]))
    if os.environ.get("XDG_RUNTIME_DIR"):
        files.append(Path(os.environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    files.append(Path.home() / ".docker" / "config.json")
    return files


def _host_of(key: str) -> str:
    key = key.removeprefix("https://").removeprefix("http://")
    return key.split("/", 1)[0]


def credentials_for(host: str) -> tuple[str, str] | None:
    """``(user, password)`` for registry ``host`` (``HOST[:PORT]``), or None."""
    for path in auth_files():
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        auths = data.get("auths") if isinstance(data, dict) else None
        if not isinstance(auths, dict):
            continue
        for key, entry in auths.items():
            if _host_of(str(key)) != host or not isinstance(entry, dict):
                continue
            token = entry.get("auth")
            if isinstance(token, str):
                try:
                    user, sep, password = base64.b64decode(token).decode().partition(":")
                except (binascii.Error, UnicodeDecodeError):
                    continue
                if sep:
                    return user, password
            if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
                return entry["username"], entry["password"]
    return None
