"""The podman and docker backends: a RunSpec as ``podman run`` / ``docker run`` options.

podman runs the store's root filesystem directly (``--rootfs DIR:O``: an overlay on top keeps
the image unchanged); it needs ``--runtime runc`` and explicit ulimits on machines where crun
or the default limits fail. docker needs an image: ``neurodesk/<id>`` imported from the rootfs
on first use. Both keep the host's network, user and signals (``--sig-proxy``) like a native run.
"""

from __future__ import annotations

import os

from neurodesk.runtime.base import Runtime
from neurodesk.runtime.spec import RunSpec

PODMAN_FIXED = [
    "--runtime",
    "runc",
    "--ulimit",
    "nofile=20000:20000",
    "--ulimit",
    "nproc=1024:1024",
]


def docker_image_name(spec: RunSpec) -> str:
    return f"neurodesk/{spec.image.lower()}"


def _common(spec: RunSpec, interactive_tty: bool) -> list[str]:
    args = ["--rm", "-i", "--network", "host", "--read-only", "--security-opt", "label=disable"]
    if interactive_tty:
        args.append("-t")
    if spec.drop_privileges:
        args += ["--cap-drop", "all", "--security-opt", "no-new-privileges"]
    for bind in spec.present_binds():
        args += ["-v", f"{bind.src}:{bind.dst}" + (":ro" if bind.readonly else "")]
    for device in spec.devices:
        args += ["--device", device]
    for key, value in sorted(spec.env.items()):
        args += ["-e", f"{key}={value}"]
    args += ["-w", spec.cwd, *spec.runtime_opts]
    return args


def podman_argv(spec: RunSpec, program: str, interactive_tty: bool = False) -> list[str]:
    args = [program, "run", *PODMAN_FIXED, *_common(spec, interactive_tty)]
    if os.geteuid() != 0:
        args += ["--userns", "keep-id"]  # the caller's uid inside, files owned as outside
    return [*args, "--rootfs", f"{spec.rootfs}:O", *spec.argv]


def docker_argv(spec: RunSpec, program: str, interactive_tty: bool = False) -> list[str]:
    args = [program, "run", *_common(spec, interactive_tty)]
    args += ["--user", f"{os.getuid()}:{os.getgid()}"]
    return [*args, docker_image_name(spec), *spec.argv]


class Podman(Runtime):
    name = "podman"

    def argv(self, spec: RunSpec, fds: dict[str, int] | None = None) -> list[str]:
        return podman_argv(spec, self.program)


class Docker(Runtime):
    name = "docker"

    def argv(self, spec: RunSpec, fds: dict[str, int] | None = None) -> list[str]:
        return docker_argv(spec, self.program)
