"""Choosing a builder backend: the first usable one in order of preference, or the named one."""

from __future__ import annotations

from neurodesk.build.apptainer import ApptainerBuilder
from neurodesk.build.buildah import BuildahBuilder
from neurodesk.build.builder import Builder
from neurodesk.build.docker import DockerBuilder
from neurodesk.build.podman import PodmanBuilder
from neurodesk.errors import MissingToolError, NotFoundError
from neurodesk.paths import Paths

# Order of preference: daemonless and rootless-capable first; docker needs its engine.
BUILDERS: dict[str, type[Builder]] = {
    "buildah": BuildahBuilder,
    "podman": PodmanBuilder,
    "docker": DockerBuilder,
    "apptainer": ApptainerBuilder,  # last: no step cache, and builds from the .def file
}
INSTALL_HINT = "install one with: sudo apt-get install buildah"


def builder_names() -> list[str]:
    return list(BUILDERS)


def choose_builder(paths: Paths, name: str | None = None) -> Builder:
    """The named builder, or the first usable one; a one-line error when there is none."""
    if name is not None:
        cls = BUILDERS.get(name)
        if cls is None:
            raise NotFoundError(
                f"no builder named '{name}'", hint=f"choose one of: {', '.join(BUILDERS)}"
            )
        if not cls.available():
            raise MissingToolError(
                f"builder '{name}' is not usable here",
                hint="install it (docker also needs a running engine), or omit --builder",
            )
        return cls(paths)
    for cls in BUILDERS.values():
        if cls.available():
            return cls(paths)
    raise MissingToolError(
        "'buildah' is not installed (needed to build images), nor is any other builder",
        hint=INSTALL_HINT,
    )
