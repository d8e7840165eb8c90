"""``neurodesk exec`` and ``neurodesk shell``: run in an image from the store."""

from __future__ import annotations

import click

from neurodesk.errors import NeurodeskError
from neurodesk.paths import Paths
from neurodesk.runtime.launch import RUNTIMES, run
from neurodesk.runtime.spec import Bind, build_runspec
from neurodesk.store import Store
from neurodesk.store.sifmount import ensure_mounted


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise NeurodeskError(f"--env '{text}' is not KEY=VALUE", hint="write --env NAME=value")
    return key, value


def run_options(func: click.decorators.FC) -> click.decorators.FC:
    options = [
        click.option(
            "--bind",
            "-B",
            "binds",
            multiple=True,
            metavar="SRC[:DST[:ro]]",
            help="bind a host path into the container (repeatable); NEURODESK_BINDPATH, "
            "APPTAINER_BINDPATH and SINGULARITY_BINDPATH are read too",
        ),
        click.option(
            "--env",
            "-e",
            "envs",
            multiple=True,
            metavar="KEY=VALUE",
            help="set a variable inside the container (repeatable)",
        ),
        click.option("--gpu", is_flag=True, help="expose NVIDIA GPUs (device nodes and driver)"),
        click.option(
            "--runtime",
            type=click.Choice(RUNTIMES),
            default=None,
            help="force a container runtime (default: bwrap, else the first one installed)",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _run(
    image: str,
    argv: list[str],
    binds: tuple[str, ...],
    envs: tuple[str, ...],
    gpu: bool,
    runtime: str | None,
    interactive: bool,
) -> None:
    record = Store(Paths.from_env().store).resolve(image)
    ensure_mounted(record.image_dir)  # a SIF held in the store is mounted on first use
    env = dict(_env_pair(e) for e in envs)
    spec = build_runspec(
        record, argv, binds=[Bind.parse(b) for b in binds], env=env, gpu=gpu or None
    )
    if interactive and argv == ["/bin/bash"] and not (record.rootfs / "bin" / "bash").exists():
        spec.argv = ["/bin/sh"]
    run(spec, runtime, interactive=interactive)


@click.command(
    "exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.argument("image")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@run_options
def exec_(
    image: str,
    command: tuple[str, ...],
    binds: tuple[str, ...],
    envs: tuple[str, ...],
    gpu: bool,
    runtime: str | None,
) -> None:
    """Run COMMAND inside IMAGE (NAME[/VERSION[/DATE]]) as if it were a native program.

    \b
    Options go before IMAGE. Examples:
      neurodesk exec dcm2niix -- dcm2niix -o out dicom/
      neurodesk exec --bind /data:/data:ro fsl/6.0.7 -- bet t1.nii brain.nii
      neurodesk exec --runtime podman dcm2niix -- dcm2niix -h

    The image is read-only. The current directory, $HOME, $TMPDIR and /tmp are visible; the
    environment is clean apart from DISPLAY, TERM, LANG/LC_*, --env and APPTAINERENV_*.
    Exit codes, signals (Ctrl-C, SIGTERM), stdin/stdout/stderr and pipes behave as with the
    native program.
    """
    argv = list(command)
    if argv[:1] == ["--"]:  # click keeps the separator when it stops parsing at IMAGE
        argv = argv[1:]
    if not argv:
        raise NeurodeskError("no command given", hint="write: neurodesk exec IMAGE -- COMMAND")
    _run(image, argv, binds, envs, gpu, runtime, interactive=False)


@click.command()
@click.argument("image")
@run_options
def shell(
    image: str, binds: tuple[str, ...], envs: tuple[str, ...], gpu: bool, runtime: str | None
) -> None:
    """Open an interactive shell inside IMAGE (NAME[/VERSION[/DATE]])."""
    _run(image, ["/bin/bash"], binds, envs, gpu, runtime, interactive=True)


def register(group: click.Group) -> None:
    group.add_command(exec_)
    group.add_command(shell)
