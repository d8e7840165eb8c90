"""``neurodesk build``."""

from __future__ import annotations

import click

from neurodesk.build.build import build_recipe, choose_builder
from neurodesk.cli.output import console, emit_json, json_option_help
from neurodesk.cli.progress import PhaseReporter
from neurodesk.paths import Paths
from neurodesk.recipe import find_recipe


@click.command()
@click.argument("recipe")
@click.option("--json", "as_json", is_flag=True, help=json_option_help)
def build(recipe: str, as_json: bool) -> None:
    """Build the image of RECIPE (a name under recipes/ or a path) into the local store.

    The image is named <name>_<version>:<YYYYMMDD>; its full log is kept under
    $NEURODESK_HOME/logs/build/.
    """
    paths = Paths.from_env()
    path = find_recipe(recipe)
    builder = choose_builder(paths)  # fails here, before any progress, if none is installed
    with PhaseReporter() as reporter:
        reporter.step(f"Building {path}")
        result = build_recipe(
            path,
            paths,
            builder=builder,
            say=reporter.update,
            on_step=lambda n, total, text: reporter.update(f"step {n}/{total}: {text[:70]}"),
        )
        reporter.done(result.record.id)
    if as_json:
        emit_json({**result.record.to_json(), "log": str(result.log)})
    else:
        console.print(f"built {result.record.id} ({result.record.digest[:19]}), log {result.log}")


def register(group: click.Group) -> None:
    group.add_command(build)
