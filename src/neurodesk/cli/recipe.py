"""``neurodesk recipe``: check, render, scaffold and list recipes."""

from __future__ import annotations

from pathlib import Path

import click

from neurodesk.catalog.categories import CATEGORIES
from neurodesk.cli.output import console, emit_json, err_console, json_option_help, print_table
from neurodesk.errors import NeurodeskError, NotFoundError, ValidationError
from neurodesk.recipe import Recipe, find_recipe, load_recipe
from neurodesk.recipe.context import RenderContext
from neurodesk.recipe.context_dir import render_readme
from neurodesk.recipe.fulltest import load_fulltest
from neurodesk.recipe.load import recipe_dirs, recipes_dir, shipped_recipes
from neurodesk.recipe.render_apptainer import render_apptainer
from neurodesk.recipe.render_docker import render_dockerfile
from neurodesk.recipe.scaffold import scaffold
from neurodesk.recipe.tests import load_tests
from neurodesk.recipe.variants import concrete_builds, select

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


def parse_locals(pairs: tuple[str, ...]) -> dict[str, str]:
    chosen: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise click.BadParameter(f"'{pair}': use KEY=PATH", param_hint="--local")
        chosen[key] = value
    return chosen


def _builds(loaded: Recipe) -> list[tuple[str, Recipe, str, str]]:
    """(label, recipe with the variant's options, arch, selector) for each image of a recipe."""
    out = []
    for build in concrete_builds(loaded):
        chosen = loaded.with_options(dict(build.options)) if build.options else loaded
        label = build.label if build.label.endswith("arm64") or build.arch == "x86_64" else ""
        out.append((f"{label or build.label}, {build.arch}", chosen, build.arch, build.selector))
    return out


def _check_one(name: str, options: dict[str, bool], local: dict[str, str] | None = None) -> Recipe:
    path = find_recipe(name)
    loaded = load_recipe(path)
    loaded = loaded.with_options(options) if options else loaded
    problems: list[str] = []
    warnings: list[str] = []
    for label, chosen, arch, selector in _builds(loaded):
        for fmt, render in FORMATS.items():
            ctx = RenderContext(chosen, arch=arch, variant=selector, locals_=local)
            try:
                render(chosen, ctx)
            except ValidationError as exc:
                problems.extend(f"{p} (rendering {fmt}, {label})" for p in exc.problems)
            warnings.extend(w for w in ctx.warnings if w not in warnings)
    for warning in warnings:
        err_console.print(f"warning: {warning} (a build would stop here)", markup=False)
        try:
            render_readme(chosen, RenderContext(chosen, arch=arch, variant=selector))
        except ValidationError as exc:
            problems.extend(f"{p} (rendering the README, {label})" for p in exc.problems)
    try:
        load_tests(path.parent)
    except ValidationError as exc:
        problems.extend(exc.problems)
    try:
        suite = load_fulltest(path.parent, recipe=loaded)
    except ValidationError as exc:
        problems.extend(exc.problems)
    else:
        for warning in suite.warnings if suite else []:
            err_console.print(f"warning: {warning}", markup=False, soft_wrap=True)
    if problems:
        raise ValidationError(problems[0], problems)
    return loaded


@recipe.command("check")
@click.argument("recipes", nargs=-1, metavar="[NAME|PATH]...")
@click.option("--all", "check_all", is_flag=True, help="check every recipe (of --recipes DIR)")
@click.option(
    "--recipes",
    "recipes_root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="a recipes directory (e.g. an upstream neurocontainers clone's recipes/)",
)
@click.option(
    "--local",
    "locals_",
    multiple=True,
    metavar="KEY=PATH",
    help="a host directory the recipe may read with get_local(KEY) (has_local(KEY) is true)",
)
@option_flag
def check(
    recipes: tuple[str, ...],
    check_all: bool,
    recipes_root: Path | None,
    locals_: tuple[str, ...],
    options: tuple[str, ...],
) -> None:
    """Validate recipes, render them in both formats for each architecture and variant they
    declare, and validate their tests (test.yaml, fulltest.yaml). Prints one line per problem
    (file: key.path: reason) and a summary; exits non-zero if any recipe is refused.

    \b
    Examples:
      neurodesk recipe check dcm2niix
      neurodesk recipe check --all                                   # the shipped recipes
      neurodesk recipe check --all --recipes ~/neurocontainers/recipes
    """
    names = list(recipes)
    if check_all:
        names += [str(p) for p in recipe_dirs(recipes_root)]
    elif recipes_root is not None:
        names = [str(recipes_root / n) if "/" not in n else n for n in names]
    if not names:
        raise click.UsageError("name a recipe (or a path to one) or pass --all")
    chosen = _parse_options(options)
    local = parse_locals(locals_)
    problems: list[str] = []
    accepted = refused = crashed = 0
    for name in names:
        try:
            loaded = _check_one(name, chosen, local)
            click.echo(f"ok  {loaded.tag_name}  ({find_recipe(name)})")
            accepted += 1
            continue
        except ValidationError as exc:
            problems.extend(exc.problems)
        except NeurodeskError as exc:
            problems.append(f"{name}: {exc}")
        except Exception as exc:  # a bug of ours: count it, keep checking the others
            crashed += 1
            problems.append(f"{name}: internal error {type(exc).__name__}: {exc} (please report)")
            continue
        refused += 1
    if len(names) > 1:
        click.echo(
            f"{len(names)} recipes: {accepted} accepted, {refused} refused, {crashed} tracebacks"
        )
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
@click.option("--variant", default=None, help="a variant the recipe declares (e.g. gpu)")
@click.option("--local", "locals_", multiple=True, metavar="KEY=PATH", help="see recipe check")
def render(
    name: str,
    fmt: str,
    options: tuple[str, ...],
    arch: str | None,
    variant: str | None,
    locals_: tuple[str, ...],
) -> None:
    """Print the build file generated from recipe NAME (the same recipe gives the same bytes)."""
    loaded = load_recipe(find_recipe(name))
    selector = ""
    if variant is not None:
        try:
            build = select(loaded, variant, arch)
        except ValueError as exc:
            raise NotFoundError(str(exc)) from None
        loaded = loaded.with_options(dict(build.options)) if build.options else loaded
        arch, selector = build.arch, build.selector
    chosen = _parse_options(options)
    loaded = loaded.with_options(chosen) if chosen else loaded
    ctx = RenderContext(loaded, arch=arch, variant=selector, locals_=parse_locals(locals_))
    click.echo(FORMATS[fmt](loaded, ctx), nl=False)


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
    """Scaffold recipes/NAME/build.yaml and fulltest.yaml; they pass `recipe check` as written."""
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
                    "variants": sorted(r.variants),
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
