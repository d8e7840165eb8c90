"""``neurodesk images``: what the local store holds."""

from __future__ import annotations

import click

from neurodesk.cli.output import emit_json, json_option_help, print_table
from neurodesk.paths import Paths
from neurodesk.store import Store


@click.command()
@click.option("--json", "as_json", is_flag=True, help=json_option_help)
def images(as_json: bool) -> None:
    """List the images in the local store."""
    records = Store(Paths.from_env().store).images()
    if as_json:
        emit_json([r.to_json() for r in records])
        return
    print_table(
        None,
        ["NAME", "VERSION", "BUILD DATE", "DIGEST"],
        [(r.name, r.version, r.builddate, r.digest[:19]) for r in records],
    )


def register(group: click.Group) -> None:
    group.add_command(images)
