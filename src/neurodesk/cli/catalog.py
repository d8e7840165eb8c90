"""``neurodesk search``, ``list`` and ``info``: the catalog of tools, local and remote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from neurodesk.catalog.categories import CATEGORIES
from neurodesk.catalog.collect import Catalog, Tool, build_catalog, file_stamp
from neurodesk.catalog.search import search as search_tools
from neurodesk.cli.output import (
    emit_json,
    err_console,
    json_option_help,
    print_table,
    print_text,
    shorten,
)
from neurodesk.errors import NotFoundError
from neurodesk.paths import Paths

if TYPE_CHECKING:
    from neurodesk.catalog.recipefacts import RecipeFacts

local_option = click.option(
    "--local", is_flag=True, help="only the store and recipes: do not ask configured sources"
)
json_option = click.option("--json", "as_json", is_flag=True, help=json_option_help)


def _warn(catalog: Catalog) -> None:
    for problem in catalog.unreachable:
        err_console.print(f"[yellow]warning:[/] skipped {problem}", soft_wrap=True)
    if catalog.upstream_missing:
        from neurodesk.catalog.upstream import never_updated_note

        err_console.print(never_updated_note(), soft_wrap=True, markup=False)


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

    Looks in the local store, the recipes, upstream's catalog (cached by 'neurodesk update';
    works offline) and every source in $NEURODESK_HOME/config.yaml; best matches (by name)
    first. Example: neurodesk search diffusion
    """
    catalog = build_catalog(Paths.from_env(), remote=not local)
    hits = search_tools(catalog.tools, term)
    _warn(catalog)
    if as_json:
        emit_json([{**h.tool.to_json(), "matched": h.reason} for h in hits])
        return
    if not hits:
        print_text(f"no tool matches '{term}'", markup=True)
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
    """List every tool available: in the store, as a recipe, in upstream's catalog (see
    'neurodesk update') or in a configured source."""
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
    paths = Paths.from_env()
    upstream = _upstream_facts(paths, tool, local)
    origins = _origins(paths, tool)
    if as_json:
        data = tool.to_json(full=True)
        data["upstream_recipe"] = upstream.__dict__ if upstream else None
        data["channels"] = _channels(paths) if "upstream" in tool.sources else []
        for offer in data["offers"]:
            offer["origin"] = origins.get(f"{offer['version']}/{offer['builddate']}") or None
        emit_json(data)
        return
    description = tool.description or (upstream.description if upstream else "")
    licenses = tool.licenses or (upstream.licenses if upstream else [])
    print_text(f"{tool.name} — {description or '-'}", style="bold")
    print_text(f"categories: {', '.join(tool.categories) or '-'}", markup=True)
    print_text(f"licence:    {', '.join(licenses) or '-'}")
    print_text(f"commands:   {' '.join(tool.commands) or '-'}")
    if tool.gui_apps:
        guis = ", ".join(f"{g} ({e})" for g, e in tool.gui_apps)
        print_text(f"GUI apps:   {guis}")
    if upstream and upstream.citation:
        print_text(f"citation:   {upstream.citation}")
    if upstream and upstream.documentation:
        print_text(f"docs:       {upstream.documentation}")
    if "upstream" in tool.sources:
        channels = ", ".join(_channels(paths)) or "none (all built-in channels removed)"
        print_text(f"channels:   {channels}")
    print_table(
        None,
        ["VERSION", "BUILD DATE", "SOURCE", "SIZE", "VERIFIED"],
        [
            (
                o.version,
                o.builddate or "-",
                o.source,
                _size(o.size),
                origins.get(f"{o.version}/{o.builddate}", {}).get("verified", "-")
                if o.source == "store"
                else "-",
            )
            for o in sorted(tool.offers, key=lambda o: (o.version, o.builddate, o.source))
        ],
    )
    if tool.readme:
        print_text()
        print_text(tool.readme.strip())


def _upstream_facts(paths: Paths, tool: Tool, local: bool) -> RecipeFacts | None:
    if "upstream" not in tool.sources:
        return None
    from neurodesk.catalog.recipefacts import recipe_facts

    if local:  # the cached copy only: no settings, no network
        return _cached_facts(paths, tool.name)
    settings = _settings(paths)
    timeout = min(float(settings["timeout"]), 5.0)
    return recipe_facts(paths.home, tool.name, str(settings["recipe_url"]), timeout)


def _cached_facts(paths: Paths, name: str) -> RecipeFacts | None:
    from neurodesk.catalog.recipefacts import facts_from_yaml
    from neurodesk.catalog.upstream import cache_dir

    try:
        return facts_from_yaml((cache_dir(paths.home) / "recipes" / f"{name}.yaml").read_bytes())
    except OSError:
        return None


def _settings(paths: Paths) -> dict[str, Any]:
    """What 'info' needs from config.yaml (recipe_url, timeout, the built-in channels left).

    Validating config.yaml imports pydantic and the HTTP client (~150 ms); the few values are
    kept in cache/info-settings.json while config.yaml and the code of its defaults are the
    same files (a config.yaml with errors is never cached: every call reports them).
    """
    import neurodesk.sources

    code = Path(neurodesk.sources.__file__).with_name("config.py")
    stamp = [file_stamp(paths.config_file, follow_symlinks=True), file_stamp(code)]
    cache = paths.cache / "info-settings.json"
    try:
        data = json.loads(cache.read_text())
        if data["stamp"] == stamp:
            known = data["settings"]
            return {
                "recipe_url": str(known["recipe_url"]),
                "timeout": float(known["timeout"]),
                "channels": [str(name) for name in known["channels"]],
            }
    except (OSError, ValueError, KeyError, TypeError):
        pass  # missing, stale, or not ours: read config.yaml
    from neurodesk.sources.config import load_config

    config = load_config(paths.config_file)
    settings = {
        "recipe_url": config.recipe_url,
        "timeout": config.timeout,
        "channels": [c.name for c in config.channels() if c.builtin],
    }
    try:
        from neurodesk.store.atomic import write_text

        write_text(cache, json.dumps({"stamp": stamp, "settings": settings}))
    except OSError:
        pass  # a read-only home: no cache, only slower
    return settings


def _channels(paths: Paths) -> list[str]:
    return [str(name) for name in _settings(paths)["channels"]]


def _origins(paths: Paths, tool: Tool) -> dict[str, dict[str, str]]:
    from neurodesk.sources.origins import read_origin

    out = {}
    for offer in tool.offers:
        if offer.source == "store":
            origin = read_origin(paths, f"{offer.name}_{offer.version}_{offer.builddate}")
            if origin:
                out[f"{offer.version}/{offer.builddate}"] = origin
    return out


def register(group: click.Group) -> None:
    group.add_command(search)
    group.add_command(list_tools)
    group.add_command(info)
