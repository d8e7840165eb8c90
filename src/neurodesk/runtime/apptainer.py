"""The Apptainer/Singularity backend: a RunSpec as ``apptainer exec`` flags.

Apptainer runs an unpacked root filesystem (a sandbox directory) directly. Its defaults are
turned into our rules: ``--cleanenv`` (we pass the environment we decided with ``--env``),
``--home`` and our own binds of $HOME and the current directory; ``--pwd`` sets the working
directory and ``--nv`` exposes NVIDIA GPUs with its own logic; ``--no-privs`` when called by
root, so the container holds no capability. Apptainer forwards signals to the program itself.
"""

from __future__ import annotations

from neurodesk.runtime.base import Runtime
from neurodesk.runtime.spec import RunSpec
from neurodesk.store.sifmount import sif_file


def apptainer_argv(spec: RunSpec, program: str) -> list[str]:
    """``program`` is the apptainer or singularity executable."""
    args = [program, "exec", "--cleanenv"]
    home = spec.env.get("HOME")
    if home:
        args += ["--home", home]
    if spec.drop_privileges:
        args.append("--no-privs")
    for bind in spec.present_binds():
        args += ["--bind", f"{bind.src}:{bind.dst}" + (":ro" if bind.readonly else "")]
    for key, value in sorted(spec.env.items()):
        if key in ("HOME",):
            continue  # set by --home; apptainer refuses to override it with --env
        args += ["--env", f"{key}={value}"]
    if spec.gpu:
        args.append("--nv")
    if spec.writable_tmpfs:
        args.append("--writable-tmpfs")
    args += spec.runtime_opts
    # A SIF held in the store is run as the file itself, as Apptainer runs SIFs.
    args += ["--pwd", spec.cwd, str(sif_file(spec.rootfs) or spec.rootfs)]
    return [*args, *spec.argv]


class Apptainer(Runtime):
    name = "apptainer"

    def argv(self, spec: RunSpec, fds: dict[str, int] | None = None) -> list[str]:
        return apptainer_argv(spec, self.program)


class Singularity(Apptainer):
    name = "singularity"
