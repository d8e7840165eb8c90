"""Every on-disk location, computed in one place from ``NEURODESK_HOME``.

All state (store, installs, build storage, caches, logs, config) lives under one directory so
that it can be moved, shared or wiped as a unit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from neurodesk.errors import NeurodeskError


def default_home() -> Path:
    env = os.environ.get("NEURODESK_HOME")
    if env:
        home = Path(env).expanduser().absolute()
        where = "NEURODESK_HOME"
    else:
        import platformdirs  # only here: every command pays for what paths.py imports

        home = Path(platformdirs.user_data_dir("neurodesk", appauthor=False))
        where = "the neurodesk data directory"
    _check_home(home, where)
    return home


def _check_home(home: Path, where: str) -> None:
    """The home must be a directory, or not exist yet below a directory: never a file."""
    if "\0" in str(home) or len(str(home).encode("utf-8", "surrogateescape")) > 3000:
        raise NeurodeskError(
            f"{where} is not a usable path", hint="set NEURODESK_HOME to a directory"
        )
    for candidate in (home, *home.parents):
        try:
            if candidate.is_dir():
                return
            if candidate.exists() or candidate.is_symlink():
                raise NeurodeskError(
                    f"{where} ({home}) is not a directory: {candidate} is a file",
                    hint="set NEURODESK_HOME to a directory; it is created when missing",
                )
        except OSError as exc:
            raise NeurodeskError(f"{where} ({home}) is not usable: {exc.strerror}") from None


@dataclass(frozen=True)
class Paths:
    home: Path

    @classmethod
    def from_env(cls) -> Paths:
        return cls(default_home())

    @property
    def store(self) -> Path:
        return self.home / "store"

    @property
    def installs(self) -> Path:
        """Default install prefix: wrappers, modules and menus."""
        return self.home / "installs"

    @property
    def buildah_root(self) -> Path:
        return self.home / "buildah" / "storage"

    @property
    def buildah_runroot(self) -> Path:
        return self.home / "buildah" / "run"

    @property
    def cache(self) -> Path:
        return self.home / "cache"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def config_file(self) -> Path:
        return self.home / "config.yaml"

    @property
    def work(self) -> Path:
        """Demo outputs and other user-facing results."""
        return self.home / "work"
