"""Choosing a runtime and handing the process over to it.

The choice, in one place: ``--runtime`` (or the ``runtime`` argument), else
``NEURODESK_RUNTIME``, else bwrap where it can create a user namespace on this host, else the
first of apptainer, singularity, podman and docker found (bwrap last, for hosts where only it
exists). Whether bwrap can create a user namespace is probed once per boot and cached in the
same file the wrappers read (``$XDG_RUNTIME_DIR`` or /tmp, ``neurodesk-userns-<uid>``, holding
the kernel's boot id and the answer). The final step of ``run`` replaces this Python process
(``exec``), so nothing of ours stays between the caller and the program except, for bwrap, the
bash signal forwarder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

from neurodesk.errors import ExternalCommandError, MissingToolError, NeurodeskError
from neurodesk.runtime.apptainer import Apptainer, Singularity
from neurodesk.runtime.base import Launch, Runtime

__all__ = ["Launch", "choose_runtime", "prepare", "run"]
from neurodesk.runtime.bwrap import Bwrap
from neurodesk.runtime.oci import Docker, Podman, docker_argv, docker_image_name, podman_argv
from neurodesk.runtime.spec import RunSpec

BACKENDS: dict[str, type[Runtime]] = {
    "bwrap": Bwrap,
    "apptainer": Apptainer,
    "singularity": Singularity,
    "podman": Podman,
    "docker": Docker,
}
RUNTIMES = tuple(BACKENDS)
# When nothing is asked for: bwrap if it can make a user namespace, else these in order.
FALLBACKS = ("apptainer", "singularity", "podman", "docker", "bwrap")
PACKAGES = {
    "bwrap": "sudo apt-get install bubblewrap",
    "apptainer": "see https://apptainer.org/docs/admin/main/installation.html",
    "singularity": "see https://docs.sylabs.io/guides/latest/admin-guide/installation.html",
    "podman": "sudo apt-get install podman runc",
    "docker": "see https://docs.docker.com/engine/install/",
}
RUNTIME_VAR = "NEURODESK_RUNTIME"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def probe_cache(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_RUNTIME_DIR") or "/tmp"
    return Path(base) / f"neurodesk-userns-{os.getuid()}"


def userns_works(bwrap: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether bwrap can create a user namespace here; asked once per boot, then cached."""
    environ = os.environ if environ is None else environ
    cache = probe_cache(environ)
    boot = _boot_id()
    try:
        line = cache.read_text().strip()
    except OSError:
        line = ""
    if line in (f"{boot} yes", f"{boot} no"):
        return line.endswith("yes")
    probe = [bwrap, "--unshare-user", "--ro-bind", "/", "/", "/bin/true"]
    try:
        works = subprocess.run(probe, capture_output=True, timeout=20, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        works = False
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}")
    try:
        tmp.write_text(f"{boot} {'yes' if works else 'no'}\n")
        tmp.replace(cache)
    except OSError:
        pass  # an unwritable cache only costs the probe next time
    return works


def _installed(name: str) -> Runtime:
    found = shutil.which(name)
    if found is None:
        raise MissingToolError(
            f"runtime '{name}' is not installed on this machine",
            hint=f"install it ({PACKAGES[name]}) or choose another with --runtime",
        )
    return BACKENDS[name](found)


def choose_runtime(name: str | None = None, environ: Mapping[str, str] | None = None) -> Runtime:
    """The runtime asked for (argument, then NEURODESK_RUNTIME), or the best one installed."""
    environ = os.environ if environ is None else environ
    name = name or environ.get(RUNTIME_VAR) or None
    if name is not None:
        if name not in BACKENDS:
            raise NeurodeskError(
                f"unknown runtime '{name}'", hint=f"choose one of: {', '.join(RUNTIMES)}"
            )
        return _installed(name)
    bwrap = shutil.which("bwrap")
    if bwrap and userns_works(bwrap, environ):
        return Bwrap(bwrap)
    for candidate in FALLBACKS:
        if shutil.which(candidate):
            return _installed(candidate)
    raise MissingToolError(
        "no container runtime found (bwrap, apptainer, singularity, podman or docker)",
        hint=PACKAGES["bwrap"],
    )


def prepare(spec: RunSpec, runtime: str | None = None, interactive: bool = False) -> Launch:
    """The command line that runs ``spec`` with the chosen runtime."""
    chosen = choose_runtime(runtime)
    tty = interactive or (os.isatty(0) and os.isatty(1))
    if isinstance(chosen, Podman):
        return Launch(chosen.name, chosen.version(), podman_argv(spec, chosen.program, tty))
    if isinstance(chosen, Docker):
        ensure_docker_image(spec, chosen.program)
        return Launch(chosen.name, chosen.version(), docker_argv(spec, chosen.program, tty))
    return chosen.launch(spec, interactive)


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
