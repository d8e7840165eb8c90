"""The Apptainer/Singularity backend: a RunSpec as ``apptainer exec`` flags.

Apptainer runs an unpacked root filesystem (a sandbox directory) directly. Its defaults are
turned into our rules: ``--cleanenv`` (we pass the environment we decided with ``--env``),
``--no-mount home,cwd`` is not used because we bind $HOME and the current directory ourselves;
``--pwd`` sets the working directory and ``--nv`` exposes NVIDIA GPUs with its own logic.
Apptainer forwards signals to the program itself.
"""

from __future__ import annotations

import os

from neurodesk.runtime.spec import RunSpec


def apptainer_argv(spec: RunSpec, program: str) -> list[str]:
    """``program`` is the apptainer or singularity executable."""
    args = [program, "exec", "--cleanenv"]
    home = spec.env.get("HOME")
    if home:
        args += ["--home", home]
    for bind in spec.binds:
        if not os.path.exists(bind.src):
            continue  # as with bwrap: a bind path that does not exist here is skipped
        args += ["--bind", f"{bind.src}:{bind.dst}" + (":ro" if bind.readonly else "")]
    for key, value in sorted(spec.env.items()):
        if key in ("HOME",):
            continue  # set by --home; apptainer refuses to override it with --env
        args += ["--env", f"{key}={value}"]
    if spec.gpu:
        args.append("--nv")
    if spec.writable_tmpfs:
        args.append("--writable-tmpfs")
    args += ["--pwd", spec.cwd, str(spec.rootfs)]
    return [*args, *spec.argv]
