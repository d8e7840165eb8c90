"""Every on-disk location, computed in one place from ``NEURODESK_HOME``.

All state (store, installs, build storage, caches, logs, config) lives under one directory so
that it can be moved, shared or wiped as a unit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs


def default_home() -> Path:
    env = os.environ.get("NEURODESK_HOME")
    if env:
        return Path(env).expanduser().absolute()
    return Path(platformdirs.user_data_dir("neurodesk", appauthor=False))


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
