"""``neurodesk exec`` and ``neurodesk shell``: run in an image from the store."""

from __future__ import annotations

import os

import click

from neurodesk.paths import Paths
from neurodesk.runtime.bwrap import bwrap_argv
from neurodesk.runtime.spec import Bind, build_runspec
from neurodesk.store import Store

bind_option = click.option(
    "--bind",
    "-B",
    "binds",
    multiple=True,
    metavar="SRC[:DST[:ro]]",
    help="bind a host path into the container (repeatable)",
)


def _exec(image: str, argv: list[str], binds: tuple[str, ...]) -> None:
    record = Store(Paths.from_env().store).resolve(image)
    spec = build_runspec(record, argv, binds=[Bind.parse(b) for b in binds])
    args = bwrap_argv(spec)
    os.execv(args[0], args)


@click.command(
    "exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.argument("image")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@bind_option
def exec_(image: str, command: tuple[str, ...], binds: tuple[str, ...]) -> None:
    """Run COMMAND inside IMAGE (NAME[/VERSION]) as if it were a native program.

    \b
    Example:
      neurodesk exec dcm2niix -- dcm2niix -h
    The current directory, $HOME and /tmp are visible; the environment is clean apart from
    DISPLAY, TERM and the locale.
    """
    _exec(image, list(command), binds)


@click.command()
@click.argument("image")
@bind_option
def shell(image: str, binds: tuple[str, ...]) -> None:
    """Open an interactive shell inside IMAGE (NAME[/VERSION])."""
    _exec(image, ["/bin/sh", "-l"] if not os.environ.get("SHELL") else ["/bin/bash"], binds)


def register(group: click.Group) -> None:
    group.add_command(exec_)
    group.add_command(shell)
