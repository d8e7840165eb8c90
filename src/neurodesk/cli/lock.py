"""``neurodesk lock`` and ``neurodesk sync``: pin the tools a project uses, reproduce them."""

from __future__ import annotations

from pathlib import Path

import click

from neurodesk.cli.output import console, emit_json, err_console, json_option_help
from neurodesk.install.installer import install_image
from neurodesk.paths import Paths
from neurodesk.repro.lock import installed_or_loaded, lock_images
from neurodesk.repro.lockfile import DEFAULT_NAME, load_lock
from neurodesk.repro.sync import sync_lock
from neurodesk.sources.progress import RichProgress
from neurodesk.store import Store


def _warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {message}", soft_wrap=True)


@click.command()
@click.argument("names", nargs=-1, metavar="[NAME[/VERSION[/DATE]]...]")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path(DEFAULT_NAME),
    show_default=True,
    help="where to write the lock file ('-' for standard output)",
)
@click.option("--local", is_flag=True, help="do not ask the configured sources where images are")
def lock(names: tuple[str, ...], output: Path, local: bool) -> None:
    """Pin tools by name, version, build date, image digest and the source each came from.

    \b
    Without NAMEs: every tool installed (under $NEURODESK_HOME/installs) or loaded (its
    wrappers on PATH, from 'module load' or '. activate').
    Each image's source is found by asking the configured sources whether they serve that
    exact digest; one found nowhere is locked as 'store' (publish it, then lock again).

    \b
    Examples:
      neurodesk lock                              # what is installed or loaded
      neurodesk lock dcm2niix mrtrix3/3.0.4 -o project/neurodesk.lock
      neurodesk sync project/neurodesk.lock       # on another machine
    """
    paths = Paths.from_env()
    specs = list(names) or [s.spec for s in installed_or_loaded(paths)]
    result = lock_images(paths, specs, ask_sources=not local, warn=_warn)
    if str(output) == "-":
        click.echo(result.to_text(), nl=False)
        return
    result.save(output)
    console.print(f"locked {len(result.tools)} tool(s) in {output}", soft_wrap=True)
    for tool in result.tools:
        console.print(f"  {tool.reference}", soft_wrap=True, markup=False)


@click.command()
@click.argument("lockfile", type=click.Path(dir_okay=False, path_type=Path), metavar="LOCKFILE")
@click.option(
    "--from",
    "source",
    metavar="SOURCE",
    help="take every image from this source (a configured name, registry, tree or layout)",
)
@click.option("--insecure", is_flag=True, help="the source speaks plain HTTP (no TLS)")
@click.option("--no-install", is_flag=True, help="only bring the images into the store")
@click.option(
    "--prefix",
    type=click.Path(file_okay=False, path_type=Path),
    help="install tree (default: $NEURODESK_HOME/installs)",
)
@click.option("--json", "as_json", is_flag=True, help=json_option_help)
def sync(
    lockfile: Path,
    source: str | None,
    insecure: bool,
    no_install: bool,
    prefix: Path | None,
    as_json: bool,
) -> None:
    """Reproduce exactly the tools of LOCKFILE here: same images, digest-verified, installed.

    Each image is taken from the store when it holds that digest, else from the source the
    lock names, else from the configured sources. A source serving another digest under the
    same name fails the sync (the locked image can no longer be had there) and leaves nothing
    of it behind.
    """
    paths = Paths.from_env()
    locked = load_lock(lockfile)
    with RichProgress() as progress:
        done = sync_lock(paths, locked, insecure, progress, source=source)
    store = Store(paths.store)
    root = (prefix or paths.installs).absolute()
    installed = []
    if not no_install:
        for item in done:
            installed.append(install_image(store.resolve(item.tool.spec), root).image_id)
    if as_json:
        emit_json(
            [
                {
                    "id": d.tool.id,
                    "digest": d.tool.digest,
                    "how": d.how,
                    "installed": not no_install,
                }
                for d in done
            ]
        )
        return
    for item in done:
        console.print(f"{item.tool.id} {item.tool.digest[:19]}: {item.how}", soft_wrap=True)
    where = f", installed into {root}" if installed else ""
    console.print(f"synced {len(done)} tool(s) from {lockfile}{where}", soft_wrap=True)


@click.command(
    "exec-lock",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("lockfile", type=click.Path(dir_okay=False, path_type=Path), metavar="LOCKFILE")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--tool", metavar="NAME", help="which tool of the lock (when it has several)")
@click.option("--insecure", is_flag=True, help="the lock's source speaks plain HTTP (no TLS)")
def exec_lock(lockfile: Path, command: tuple[str, ...], tool: str | None, insecure: bool) -> None:
    """Run COMMAND in exactly the image LOCKFILE pins (synced first when it is not here).

    \b
    The call format for DataLad: the dataset keeps the lock file as its container "image",
    so its history pins the digest, and a fresh clone fetches exactly that image:
      neurodesk lock dcm2niix -o dcm2niix.lock
      datalad containers-add dcm2niix --url dcm2niix.lock \\
          --call-fmt 'neurodesk exec-lock {img} -- {cmd}'
      datalad containers-run -n dcm2niix --input dicom --output nifti \\
          'dcm2niix -o nifti dicom'
    """
    from neurodesk.cli.lazy import load_command
    from neurodesk.errors import NeurodeskError
    from neurodesk.repro.sync import sync_tool

    argv = list(command)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        raise NeurodeskError("no command given", hint="write: neurodesk exec-lock LOCKFILE -- CMD")
    locked = load_lock(lockfile)
    tools = [t for t in locked.tools if tool is None or t.name == tool]
    if len(tools) != 1:
        names = ", ".join(t.name for t in locked.tools)
        raise NeurodeskError(
            f"{lockfile} pins {len(tools) if tool else len(locked.tools)} matching tool(s)",
            hint=f"choose one with --tool NAME ({names})",
        )
    sync_tool(Paths.from_env(), tools[0], insecure)  # present, or fetched and verified
    load_command("exec").main(
        args=[tools[0].spec, "--", *argv], prog_name="neurodesk", standalone_mode=False
    )


def register(group: click.Group) -> None:
    group.add_command(lock)
    group.add_command(sync)
    group.add_command(exec_lock)
