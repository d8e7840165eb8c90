"""``neurodesk install`` / ``uninstall``."""

from __future__ import annotations

from pathlib import Path

import click

from neurodesk.cli.output import console, emit_json, json_option_help
from neurodesk.install.installer import install_image, uninstall_image
from neurodesk.paths import Paths
from neurodesk.sources.fetch import fetch_image
from neurodesk.sources.progress import RichProgress
from neurodesk.store import Store

prefix_option = click.option(
    "--prefix",
    type=click.Path(file_okay=False, path_type=Path),
    help="install tree (default: $NEURODESK_HOME/installs)",
)


@click.command()
@click.argument("image")
@prefix_option
@click.option(
    "--from",
    "source",
    metavar="SOURCE",
    help="take the image from this source only: a name from config.yaml, a registry "
    "HOST[:PORT]/NS, an http(s):// OCI layout, a CVMFS-layout tree or OCI layout directory",
)
@click.option("--insecure", is_flag=True, help="the source speaks plain HTTP (no TLS)")
@click.option("--json", "as_json", is_flag=True, help=json_option_help)
def install(
    image: str, prefix: Path | None, source: str | None, insecure: bool, as_json: bool
) -> None:
    """Install IMAGE (NAME[/VERSION]) from the store: one wrapper per command it deploys.

    Put the printed bin directory on PATH and call the tools by name.
    """
    paths = Paths.from_env()
    # Not in the store (or --from): fetch it from the sources of $NEURODESK_HOME/config.yaml.
    with RichProgress() as progress:
        record = fetch_image(image, paths, source, insecure, progress)
    result = install_image(record, (prefix or paths.installs).absolute())
    if as_json:
        emit_json({"image": record.id, "bin": str(result.bin_dir), "commands": result.commands})
        return
    console.print(f"installed {record.id}: {len(result.commands)} command(s)")
    console.print(f"  {' '.join(result.commands)}", soft_wrap=True)
    console.print(f'  export PATH="{result.bin_dir}:$PATH"', soft_wrap=True)


@click.command()
@click.argument("image")
@prefix_option
def uninstall(image: str, prefix: Path | None) -> None:
    """Remove what 'install' wrote for IMAGE (NAME[/VERSION]), and nothing else."""
    paths = Paths.from_env()
    record = Store(paths.store).resolve(image)
    removed = uninstall_image((prefix or paths.installs).absolute(), record.id)
    console.print(f"uninstalled {removed.image_id}")


def register(group: click.Group) -> None:
    group.add_command(install)
    group.add_command(uninstall)
