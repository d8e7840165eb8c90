"""The interface every builder backend (buildah, podman, docker, apptainer) implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path

from neurodesk.build.process import LineHook


class Builder(ABC):
    name: str

    @abstractmethod
    def version(self) -> str: ...

    @abstractmethod
    def has_image(self, ref: str) -> bool: ...

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
        """Build ``context/Dockerfile`` into image ``tag``."""

    @abstractmethod
    def export_oci(self, ref: str, dest: Path, log: Path) -> None:
        """Write image ``ref`` as an OCI image layout at ``dest``."""
