"""``neurodesk search``, ``list`` and ``info``: the catalog of tools, local and remote."""

from __future__ import annotations

import click

from neurodesk.catalog.categories import CATEGORIES
from neurodesk.catalog.collect import Catalog, Tool, build_catalog
from neurodesk.catalog.search import search as search_tools
from neurodesk.cli.output import (
    console,
    emit_json,
    err_console,
    json_option_help,
    print_table,
    shorten,
)
from neurodesk.errors import NotFoundError
from neurodesk.paths import Paths

local_option = click.option(
    "--local", is_flag=True, help="only the store and recipes: do not ask configured sources"
)
json_option = click.option("--json", "as_json", is_flag=True, help=json_option_help)


def _warn(catalog: Catalog) -> None:
    for problem in catalog.unreachable:
        err_console.print(f"[yellow]warning:[/] skipped {problem}", soft_wrap=True)


def _rows(tools: list[Tool]) -> list[tuple[str, str, str, str, str]]:
    return [
        (
            t.name,
            ", ".join(t.versions),
            ", ".join(t.categories),
            ", ".join(t.sources),
            shorten(t.description),
        )
        for t in tools
    ]


COLUMNS = ["NAME", "VERSIONS", "CATEGORIES", "SOURCES", "DESCRIPTION"]


@click.command()
@click.argument("term")
@local_option
@json_option
def search(term: str, local: bool, as_json: bool) -> None:
    """Find tools whose name, commands, categories or description contain TERM.

    Looks in the local store, the recipes and every source in $NEURODESK_HOME/config.yaml;
    best matches (by name) first. Example: neurodesk search diffusion
    """
    catalog = build_catalog(Paths.from_env(), remote=not local)
    hits = search_tools(catalog.tools, term)
    _warn(catalog)
    if as_json:
        emit_json([{**h.tool.to_json(), "matched": h.reason} for h in hits])
        return
    if not hits:
        console.print(f"no tool matches '{term}'")
        return
    print_table(None, COLUMNS, _rows([h.tool for h in hits]))


@click.command("list")
@click.option(
    "--category",
    type=click.Choice(CATEGORIES, case_sensitive=False),
    metavar="CATEGORY",
    help="only tools in this menu category (e.g. 'diffusion imaging')",
)
@local_option
@json_option
def list_tools(category: str | None, local: bool, as_json: bool) -> None:
    """List every tool available: in the store, as a recipe, or in a configured source."""
    catalog = build_catalog(Paths.from_env(), remote=not local)
    tools = list(catalog.tools.values())
    if category:
        tools = [t for t in tools if category.lower() in (c.lower() for c in t.categories)]
    _warn(catalog)
    if as_json:
        emit_json([t.to_json() for t in tools])
        return
    print_table(None, COLUMNS, _rows(tools))


def _size(size: int | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(size)


@click.command()
@click.argument("name")
@local_option
@json_option
@click.option("--packages", is_flag=True, help="the packages inside the store's image instead")
def info(name: str, local: bool, as_json: bool, packages: bool) -> None:
    """Everything known about tool NAME: versions, categories, commands, README, licence, size
    and which sources have it."""
    if packages:  # the software inside NAME[/VERSION] (see 'neurodesk sbom')
        from neurodesk.cli.sbom import show_packages

        show_packages(name, as_json)
        return
    catalog = build_catalog(Paths.from_env(), remote=not local, detail=True, only=name)
    _warn(catalog)
    tool = catalog.tools.get(name)
    if tool is None:
        raise NotFoundError(
            f"no tool named '{name}' in the store, the recipes or the sources",
            hint=f"try: neurodesk search {name}",
        )
    if as_json:
        emit_json(tool.to_json(full=True))
        return
    console.print(f"[bold]{tool.name}[/] — {tool.description}", soft_wrap=True)
    console.print(f"categories: {', '.join(tool.categories) or '-'}", soft_wrap=True)
    console.print(f"licence:    {', '.join(tool.licenses) or '-'}", soft_wrap=True)
    console.print(f"commands:   {' '.join(tool.commands) or '-'}", soft_wrap=True)
    print_table(
        None,
        ["VERSION", "BUILD DATE", "SOURCE", "SIZE"],
        [
            (o.version, o.builddate or "-", o.source, _size(o.size))
            for o in sorted(tool.offers, key=lambda o: (o.version, o.builddate, o.source))
        ],
    )
    if tool.readme:
        console.print()
        console.print(tool.readme.strip(), markup=False, soft_wrap=True)


def register(group: click.Group) -> None:
    group.add_command(search)
    group.add_command(list_tools)
    group.add_command(info)
