"""Choosing a runtime and handing the process over to it.

``bwrap`` is the default wherever it is installed; otherwise the first of apptainer,
singularity, podman and docker found. ``--runtime`` forces one, with a one-line error when it
is not installed. The final step replaces this Python process (``exec``), so nothing of ours
stays between the caller and the program except, for bwrap, the bash signal forwarder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import NoReturn

from neurodesk.errors import ExternalCommandError, MissingToolError, NeurodeskError
from neurodesk.runtime.apptainer import apptainer_argv
from neurodesk.runtime.bwrap import bwrap_argv, data_fds
from neurodesk.runtime.forward import forwarded
from neurodesk.runtime.oci import docker_argv, docker_image_name, podman_argv
from neurodesk.runtime.spec import RunSpec

RUNTIMES = ("bwrap", "apptainer", "singularity", "podman", "docker")
PACKAGES = {
    "bwrap": "sudo apt-get install bubblewrap",
    "apptainer": "see https://apptainer.org/docs/admin/main/installation.html",
    "singularity": "see https://docs.sylabs.io/guides/latest/admin-guide/installation.html",
    "podman": "sudo apt-get install podman runc",
    "docker": "see https://docs.docker.com/engine/install/",
}


@dataclass
class Launch:
    runtime: str
    argv: list[str]
    fds: dict[str, int] = field(default_factory=dict)


def choose_runtime(name: str | None = None) -> tuple[str, str]:
    """(runtime name, program path): the one asked for, or the first one installed."""
    if name is not None:
        if name not in RUNTIMES:
            raise NeurodeskError(
                f"unknown runtime '{name}'", hint=f"choose one of: {', '.join(RUNTIMES)}"
            )
        found = shutil.which(name)
        if found is None:
            raise MissingToolError(
                f"runtime '{name}' is not installed on this machine",
                hint=f"install it ({PACKAGES[name]}) or drop --runtime to use another",
            )
        return name, found
    for runtime in RUNTIMES:
        found = shutil.which(runtime)
        if found:
            return runtime, found
    raise MissingToolError(
        "no container runtime found (bwrap, apptainer, singularity, podman or docker)",
        hint=PACKAGES["bwrap"],
    )


def prepare(spec: RunSpec, runtime: str | None = None, interactive: bool = False) -> Launch:
    """The command line that runs ``spec`` with the chosen runtime."""
    name, program = choose_runtime(runtime)
    tty = interactive or (os.isatty(0) and os.isatty(1))
    if name == "bwrap":
        fds = data_fds(spec)
        argv = bwrap_argv(spec, fds)
        # An interactive shell needs the terminal as its controlling tty: no forwarder then.
        return Launch(name, argv if interactive else forwarded(argv), fds)
    if name in ("apptainer", "singularity"):
        return Launch(name, apptainer_argv(spec, program))
    if name == "podman":
        return Launch(name, podman_argv(spec, program, tty))
    ensure_docker_image(spec, program)
    return Launch(name, docker_argv(spec, program, tty))


def ensure_docker_image(spec: RunSpec, docker: str) -> None:
    """docker cannot run a directory: import the rootfs once as ``neurodesk/<id>``."""
    image = docker_image_name(spec)
    probe = subprocess.run([docker, "image", "inspect", image], capture_output=True, check=False)
    if probe.returncode == 0:
        return
    tar = subprocess.Popen(["tar", "-C", str(spec.rootfs), "-c", "."], stdout=subprocess.PIPE)
    result = subprocess.run(
        [docker, "import", "-", image], stdin=tar.stdout, capture_output=True, text=True
    )
    tar.wait()
    if result.returncode != 0:
        raise ExternalCommandError(
            f"docker could not import the image as {image}",
            log_tail=result.stderr.strip().splitlines()[-5:],
        )


def run(spec: RunSpec, runtime: str | None = None, interactive: bool = False) -> NoReturn:
    """Replace this process by the container run."""
    launch = prepare(spec, runtime, interactive)
    os.execv(launch.argv[0], launch.argv)
