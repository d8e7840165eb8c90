"""``neurodesk build``."""

from __future__ import annotations

from pathlib import Path

import click

from neurodesk.build.build import build_recipe
from neurodesk.build.select import builder_names, choose_builder
from neurodesk.cli.output import console, emit_json, json_option_help
from neurodesk.cli.progress import PhaseReporter
from neurodesk.cli.recipe import parse_locals
from neurodesk.paths import Paths
from neurodesk.recipe import find_recipe


@click.command()
@click.argument("recipe")
@click.option(
    "--builder",
    type=click.Choice(builder_names()),
    help="builder backend (default: the first usable of " + ", ".join(builder_names()) + ")",
)
@click.option(
    "--base-override",
    metavar="IMAGE",
    help="build on IMAGE instead of the recipe's base-image (e.g. debian:bookworm when no "
    "Ubuntu mirror is reachable)",
)
@click.option(
    "--releases",
    type=click.Path(file_okay=False, path_type=Path),
    help="catalog root to update: DIR/releases/<name>/<version>.json, DIR/apps.json, "
    "DIR/log.txt (default: $NEURODESK_HOME/catalog)",
)
@click.option(
    "--local",
    "locals_",
    multiple=True,
    metavar="KEY=PATH",
    help="a host directory the recipe reads with get_local(KEY) (has_local(KEY) is then true)",
)
@click.option(
    "--variant",
    default=None,
    help="build a variant the recipe declares (e.g. gpu): the image is <name>_<variant>",
)
@click.option("--json", "as_json", is_flag=True, help=json_option_help)
def build(
    recipe: str,
    builder: str | None,
    base_override: str | None,
    releases: Path | None,
    locals_: tuple[str, ...],
    variant: str | None,
    as_json: bool,
) -> None:
    """Build the image of RECIPE (a name under recipes/ or a path) into the local store.

    \b
    The image is named <name>_<version>:<YYYYMMDD> (NEURODESK_BUILDDATE overrides the date)
    and labelled with its name, version, build date, recipe digest and builder. Steps are
    cached: an unchanged recipe rebuilds in about a second, and changing one directive
    rebuilds from that directive on. The log of each build is kept under
    $NEURODESK_HOME/logs/build/. A missing base image is pulled, or made with debootstrap
    (see 'neurodesk base').

    \b
    Examples:
      neurodesk build dcm2niix
      neurodesk build ./recipes/mrtrix3 --builder podman
      neurodesk build fsl --base-override debian:bookworm --releases ~/src/neurocontainers
    """
    paths = Paths.from_env()
    path = find_recipe(recipe)
    local = {k: str(Path(v).absolute()) for k, v in parse_locals(locals_).items()}
    chosen = choose_builder(paths, builder)  # fails here, before any progress, if none works
    with PhaseReporter() as reporter:
        reporter.step(f"Building {path} with {chosen.name}")
        result = build_recipe(
            path,
            paths,
            builder=chosen,
            say=reporter.update,
            on_step=lambda n, total, text: reporter.update(f"step {n}/{total}: {text[:90]}"),
            base_override=base_override,
            releases=releases,
            locals_=local,
            variant=variant,
        )
        reporter.done(result.record.id + ("" if result.exported else " (unchanged)"))
    if as_json:
        emit_json(
            {
                **result.record.to_json(),
                "log": str(result.log),
                "builder": result.builder,
                "image_id": result.image_id,
                "exported": result.exported,
                "release": str(result.release),
                "base_source": result.base_source,
                "timings": result.timings,
            }
        )
    else:
        console.print(
            f"built {result.record.id} ({result.record.digest[:19]}), log {result.log}",
            soft_wrap=True,
        )


def register(group: click.Group) -> None:
    group.add_command(build)
