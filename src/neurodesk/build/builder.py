"""The interface every builder backend (buildah, podman, docker, apptainer) implements.

A backend turns a build context (``Dockerfile``, ``README.md``, ``build.yaml`` and any recipe
files) into a tagged image in *its own* storage, and can write that image as an OCI image
layout, which the local store imports. Everything else — base images, caching decisions, logs,
progress, releases — is the same for every backend and lives in :mod:`neurodesk.build.build`.
"""

from __future__ import annotations

import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import ClassVar

from neurodesk.build.process import LineHook
from neurodesk.paths import Paths

# Given an image's layer digests (bottom first), the ones an export may leave out.
SkipLayers = Callable[[list[str]], Collection[str]]


def quiet(argv: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a short query command; never raises for a non-zero exit or a missing program."""
    try:
        return subprocess.run(
            list(argv), capture_output=True, text=True, check=False, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(list(argv), 127, "", str(exc))


class Builder(ABC):
    """One container build tool. ``ref`` arguments are image references as the tool knows them."""

    name: ClassVar[str]
    #: what the tool's Dockerfile steps look like in its output, for progress (None: no steps)
    step_pattern: ClassVar[str | None] = None

    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    @classmethod
    @abstractmethod
    def available(cls) -> bool:
        """True when this tool is installed *and usable* here (e.g. docker: its daemon answers)."""

    @abstractmethod
    def version(self) -> str: ...

    @abstractmethod
    def has_image(self, ref: str) -> bool: ...

    @abstractmethod
    def image_id(self, ref: str) -> str | None:
        """The image's id (``sha256:`` + digest of its config), None when there is no such image.

        The id is what decides whether an export is needed: the store compares it with the
        config digest of the image it holds under the same name.
        """

    @abstractmethod
    def pull(self, ref: str, log: Path) -> bool:
        """Try to fetch ``ref`` from its registry; False when it cannot be had."""

    @abstractmethod
    def import_rootfs(self, tarball: Path, ref: str, log: Path) -> None:
        """Register a root filesystem tarball as image ``ref``."""

    @abstractmethod
    def build(
        self,
        context: Path,
        tag: str,
        labels: Mapping[str, str],
        log: Path,
        on_line: LineHook | None = None,
    ) -> None:
        """Build ``context/Dockerfile`` into image ``tag``, reusing cached steps."""

    @abstractmethod
    def export_oci(self, ref: str, dest: Path, log: Path) -> None:
        """Write image ``ref`` as an OCI image layout at ``dest``."""

    def export_layers(self, ref: str, dest: Path, skip: SkipLayers) -> bool:
        """Write ``ref`` as an OCI layout at ``dest`` leaving out the layer blobs
        ``skip(layer digests)`` names (the store holds them), with each layer's tar-split
        record in ``dest/tarsplit/``.
        False when this builder cannot (then :meth:`export_oci` writes everything)."""
        return False

    @abstractmethod
    def remove_image(self, ref: str) -> None:
        """Drop the tag ``ref`` (cached layers stay); no error when it does not exist."""
