"""``neurodesk recipe``: check, render, scaffold and list recipes."""

from __future__ import annotations

from pathlib import Path

import click

from neurodesk.catalog.categories import CATEGORIES
from neurodesk.cli.output import console, emit_json, json_option_help, print_table
from neurodesk.errors import NeurodeskError, ValidationError
from neurodesk.recipe import Recipe, find_recipe, load_recipe
from neurodesk.recipe.context import RenderContext
from neurodesk.recipe.load import recipes_dir, shipped_recipes
from neurodesk.recipe.render_apptainer import render_apptainer
from neurodesk.recipe.render_docker import render_dockerfile
from neurodesk.recipe.scaffold import scaffold
from neurodesk.recipe.tests import load_tests

FORMATS = {"docker": render_dockerfile, "apptainer": render_apptainer}


def _parse_options(pairs: tuple[str, ...]) -> dict[str, bool]:
    chosen: dict[str, bool] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or value.lower() not in ("true", "false", "on", "off", "1", "0"):
            raise click.BadParameter(
                f"'{pair}': use NAME=true or NAME=false", param_hint="--option"
            )
        chosen[key] = value.lower() in ("true", "on", "1")
    return chosen


option_flag = click.option(
    "--option",
    "options",
    multiple=True,
    metavar="NAME=true|false",
    help="switch a recipe option on or off (its version_suffix joins the version)",
)
arch_flag = click.option(
    "--arch",
    type=click.Choice(["x86_64", "aarch64"]),
    default=None,
    help="render for this architecture (default: this machine's)",
)


@click.group()
def recipe() -> None:
    """Check, render, scaffold and list build recipes (recipes/<name>/build.yaml).

    \b
    Examples:
      neurodesk recipe check --all             # validate and render every shipped recipe
      neurodesk recipe check ./myrecipe        # a recipe directory or build.yaml anywhere
      neurodesk recipe render mrtrix3 --format apptainer
      neurodesk recipe new mytool --package mytool-bin --command mytool
    """


def _check_one(name: str, options: dict[str, bool]) -> Recipe:
    path = find_recipe(name)
    loaded = load_recipe(path)
    loaded = loaded.with_options(options) if options else loaded
    problems: list[str] = []
    for arch in loaded.architectures:
        for fmt, render in FORMATS.items():
            try:
                render(loaded, RenderContext(loaded, arch=arch))
            except ValidationError as exc:
                problems.extend(f"{p} (rendering {fmt}, {arch})" for p in exc.problems)
    try:
        load_tests(path.parent)
    except ValidationError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ValidationError(problems[0], problems)
    return loaded


@recipe.command("check")
@click.argument("recipes", nargs=-1, metavar="[NAME|PATH]...")
@click.option("--all", "check_all", is_flag=True, help="check every shipped recipe")
@option_flag
def check(recipes: tuple[str, ...], check_all: bool, options: tuple[str, ...]) -> None:
    """Validate recipes, render them in both formats for each of their architectures, and
    validate their test.yaml. Prints one line per problem (file: key.path: reason) and exits
    non-zero if there is any."""
    names = list(recipes)
    if check_all:
        names += [str(p.parent) for p in shipped_recipes()]
    if not names:
        raise click.UsageError("name a recipe (or a path to one) or pass --all")
    chosen = _parse_options(options)
    problems: list[str] = []
    for name in names:
        try:
            loaded = _check_one(name, chosen)
            click.echo(f"ok  {loaded.tag_name}  ({find_recipe(name)})")
        except ValidationError as exc:
            problems.extend(exc.problems)
        except NeurodeskError as exc:
            problems.append(f"{name}: {exc}")
    if problems:
        raise ValidationError(
            f"{len(problems)} problem(s) found", problems, hint="fix each line, then check again"
        )


@recipe.command("render")
@click.argument("name", metavar="NAME|PATH")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(sorted(FORMATS)),
    default="docker",
    show_default=True,
    help="Dockerfile, or Apptainer/Singularity definition file",
)
@option_flag
@arch_flag
def render(name: str, fmt: str, options: tuple[str, ...], arch: str | None) -> None:
    """Print the build file generated from recipe NAME (the same recipe gives the same bytes)."""
    loaded = load_recipe(find_recipe(name))
    chosen = _parse_options(options)
    loaded = loaded.with_options(chosen) if chosen else loaded
    click.echo(FORMATS[fmt](loaded, RenderContext(loaded, arch=arch)), nl=False)


@recipe.command("new")
@click.argument("name")
@click.option("--version", "version", default="1.0.0", show_default=True)
@click.option("--package", default=None, help="Debian package to install (default: NAME)")
@click.option("--command", "command", default=None, help="command to deploy (default: NAME)")
@click.option("--category", type=click.Choice(CATEGORIES), default="programming", show_default=True)
@click.option("--license", "license_id", default="MIT", show_default=True, help="SPDX id")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="where to write it (default: recipes/NAME)",
)
def new(
    name: str,
    version: str,
    package: str | None,
    command: str | None,
    category: str,
    license_id: str,
    directory: Path | None,
) -> None:
    """Scaffold recipes/NAME/build.yaml and test.yaml; they pass `recipe check` as written."""
    target = directory or recipes_dir() / name
    written = scaffold(target, name, version, package, command, category, license_id)
    _check_one(str(target), {})
    for path in written:
        click.echo(f"wrote {path}")
    console.print(f"next: edit them, then `neurodesk recipe check {target}`")


@recipe.command("list")
@click.option("--json", "as_json", is_flag=True, help=json_option_help)
def list_recipes(as_json: bool) -> None:
    """List the shipped recipes: name, version, categories, deployed commands."""
    loaded = [(path, load_recipe(path)) for path in shipped_recipes()]
    if as_json:
        emit_json(
            [
                {
                    "name": r.name,
                    "version": r.version,
                    "categories": r.categories,
                    "architectures": list(r.architectures),
                    "bins": r.deploy.bins,
                    "path": r.deploy.path,
                    "gui_apps": [g.model_dump() for g in r.gui_apps],
                    "options": sorted(r.options),
                    "recipe": str(path),
                }
                for path, r in loaded
            ]
        )
        return
    print_table(
        None,
        ["NAME", "VERSION", "CATEGORIES", "COMMANDS"],
        [
            (r.name, r.version, ", ".join(r.categories), " ".join(r.deploy.bins or r.deploy.path))
            for _, r in loaded
        ],
    )


def register(group: click.Group) -> None:
    group.add_command(recipe)
