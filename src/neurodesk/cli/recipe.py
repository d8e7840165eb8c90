"""``neurodesk recipe``: check, render and list recipes."""

from __future__ import annotations

import click

from neurodesk.cli.output import console, emit_json, json_option_help, print_table
from neurodesk.errors import ValidationError
from neurodesk.recipe import find_recipe, load_recipe
from neurodesk.recipe.load import recipes_dir
from neurodesk.recipe.render_docker import render_dockerfile


@click.group()
def recipe() -> None:
    """Check, render and list build recipes (recipes/<name>/build.yaml)."""


@recipe.command("check")
@click.argument("recipes", nargs=-1)
@click.option("--all", "check_all", is_flag=True, help="check every shipped recipe")
def check(recipes: tuple[str, ...], check_all: bool) -> None:
    """Validate RECIPES (names or paths): one line per problem, non-zero exit if any."""
    names = list(recipes)
    if check_all:
        names += sorted(str(p.parent) for p in recipes_dir().glob("*/build.yaml"))
    if not names:
        raise click.UsageError("name a recipe or pass --all")
    problems: list[str] = []
    for name in names:
        try:
            path = find_recipe(name)
            render_dockerfile(load_recipe(path))
            console.print(f"ok  {path}")
        except ValidationError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ValidationError(f"{len(problems)} problem(s) found", problems)


@recipe.command("render")
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice(["docker"]), default="docker", show_default=True)
def render(name: str, fmt: str) -> None:
    """Print the build file generated from recipe NAME."""
    click.echo(render_dockerfile(load_recipe(find_recipe(name))), nl=False)


@recipe.command("list")
@click.option("--json", "as_json", is_flag=True, help=json_option_help)
def list_recipes(as_json: bool) -> None:
    """List the shipped recipes."""
    rows = []
    for path in sorted(recipes_dir().glob("*/build.yaml")):
        r = load_recipe(path)
        rows.append({"name": r.name, "version": r.version, "categories": r.categories})
    if as_json:
        emit_json(rows)
        return
    print_table(
        None,
        ["NAME", "VERSION", "CATEGORIES"],
        [(r["name"], r["version"], ", ".join(r["categories"])) for r in rows],
    )


def register(group: click.Group) -> None:
    group.add_command(recipe)
