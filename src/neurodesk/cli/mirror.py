"""``neurodesk mirror SRC DST``: replicate images between registries and trees."""

from __future__ import annotations

import click

from neurodesk.cli.output import console, emit_json, err_console, json_option_help
from neurodesk.paths import Paths
from neurodesk.publish.mirror import mirror as run_mirror
from neurodesk.sources.progress import RichProgress


@click.command()
@click.argument("src")
@click.argument("dst")
@click.option(
    "--image", "images", multiple=True, metavar="NAME[/VERSION]", help="only these (repeatable)"
)
@click.option("--insecure", is_flag=True, help="the registries speak plain HTTP (no TLS)")
@click.option("--json", "as_json", is_flag=True, help=json_option_help)
def mirror(src: str, dst: str, images: tuple[str, ...], insecure: bool, as_json: bool) -> None:
    """Copy to DST every image SRC has and DST lacks, verifying each (a Stratum 1 for a site).

    SRC and DST are registries (HOST[:PORT]/NS) or CVMFS-layout trees (a directory path):
    registry → registry, tree → tree and registry → tree are supported. Images already in DST
    are not copied again, so running it from cron keeps a mirror up to date.

    \b
    Example:
      neurodesk mirror 10.0.0.5:5000/neurodesk /srv/cvmfs/neurodesk.lab --insecure
    """
    with RichProgress() as progress:
        report = run_mirror(
            src,
            dst,
            list(images),
            Paths.from_env(),
            insecure,
            say=lambda m: err_console.print(m, soft_wrap=True),
            progress=progress,
        )
    if as_json:
        emit_json(report.to_json())
        return
    console.print(
        f"mirrored {len(report.copied)} image(s) to {dst}; {len(report.present)} already there",
        soft_wrap=True,
    )


def register(group: click.Group) -> None:
    group.add_command(mirror)
