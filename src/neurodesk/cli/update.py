"""``neurodesk update``: fetch upstream's catalog of containers."""

from __future__ import annotations

import click

from neurodesk.cli.output import console, emit_json, json_option_help
from neurodesk.paths import Paths


@click.command()
@click.option("--url", help="fetch from this URL (or file) instead of catalog_url")
@click.option("--json", "as_json", is_flag=True, help=json_option_help)
def update(url: str | None, as_json: bool) -> None:
    """Download upstream's catalog (apps.json) so search, list, info and install know every
    Neurodesk container.

    \b
    The URL is, in this order: --url, $NEURODESK_CATALOG_URL, catalog_url in
    $NEURODESK_HOME/config.yaml, else neurocommand's apps.json on GitHub. The request is
    conditional (ETag, If-Modified-Since); a download that is not a valid catalog is refused
    and the cached copy is kept. Everything else then works offline from that copy.
    Example: neurodesk update && neurodesk install fsl
    """
    from neurodesk.catalog.update import update as run_update
    from neurodesk.sources.config import load_config

    paths = Paths.from_env()
    settings = load_config(paths.config_file)
    result = run_update(paths.home, url or settings.catalog_source(), max(settings.timeout, 30))
    if as_json:
        emit_json(
            {
                "changed": result.changed,
                "url": result.url,
                "containers": len(result.catalog.containers),
                "tools": len(result.catalog.names()),
            }
        )
        return
    console.print(result.summary, soft_wrap=True, markup=False)


def register(group: click.Group) -> None:
    group.add_command(update)
