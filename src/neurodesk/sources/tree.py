"""The CVMFS layout, as published at ``/cvmfs/neurodesk.ardc.edu.au``::

    containers/<id>/<id>.simg/        the unpacked root filesystem (a directory, despite .simg)
    containers/<id>/commands.txt      one command per line
    containers/<id>/<command>         one wrapper per command
    containers/<id>/image.json        ours: name, version, builddate, digest, env, labels
    neurodesk-modules/<category>/<name>/<version>.lua  (spaces in a category become _)
    apps.json, log.txt, releases/     the catalog (upstream formats)

``<id>`` is ``<name>_<version>_<builddate>``. Trees we publish carry ``image.json``; for others
the id is split as upstream does (names and versions without ``_``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurodesk.image.oci import ImageFormatError
from neurodesk.sources.naming import Available, Spec, newest, split_id

STAGING = ".neurodesk-staging"  # hidden: readers listing containers/ never look inside


@dataclass(frozen=True)
class Tree:
    root: Path

    @property
    def containers(self) -> Path:
        return self.root / "containers"

    @property
    def modules(self) -> Path:
        return self.root / "neurodesk-modules"

    @property
    def staging(self) -> Path:
        return self.root / STAGING

    def container_dir(self, image_id: str) -> Path:
        return self.containers / image_id

    def sif_names(self, image_id: str) -> frozenset[str]:
        """The SIF files a container directory may hold beside its sandbox (``publish --tree
        --sif``); not in its files.json: the SIF carries its own digest (``.sha256``)."""
        return frozenset({f"{image_id}.sif", f"{image_id}.sif.sha256"})

    def sandbox(self, image_id: str) -> Path:
        return self.container_dir(image_id) / f"{image_id}.simg"

    def metadata(self, image_id: str) -> dict[str, Any]:
        """``image.json`` of a container ({} when absent); ImageFormatError when damaged."""
        path = self.container_dir(image_id) / "image.json"
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_bytes())
        except (ValueError, UnicodeDecodeError, OSError):
            data = None
        if not isinstance(data, dict) or not all(
            isinstance(data.get(key, ""), str) for key in ("name", "version", "builddate")
        ):
            raise ImageFormatError(f"{path} is damaged", hint="publish the image to the tree again")
        return data

    def is_tree(self) -> bool:
        return self.containers.is_dir()

    def available(self, name: str | None = None) -> list[Available]:
        found: list[Available] = []
        if not self.containers.is_dir():
            return found
        for entry in sorted(self.containers.iterdir()):
            if entry.name.startswith(".") or not (entry / f"{entry.name}.simg").is_dir():
                continue
            try:
                meta = self.metadata(entry.name)
            except ImageFormatError:
                meta = {}  # named by its id; installing it reports the damage
            if meta.get("name"):
                parts: tuple[str, str, str] | None = (
                    str(meta["name"]),
                    str(meta["version"]),
                    str(meta["builddate"]),
                )
            else:
                parts = split_id(entry.name, name)
            if parts and (name is None or parts[0] == name):
                found.append(Available(*parts, where=entry.name))
        return found

    def find(self, spec: Spec) -> Available | None:
        return newest(self.available(spec.name), spec)
