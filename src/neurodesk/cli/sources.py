"""``neurodesk sources``: every source and mirror, how they are doing, and who serves what."""

from __future__ import annotations

import click

from neurodesk.cli.output import console, emit_json, json_option_help, print_table
from neurodesk.paths import Paths


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} MB/s"


@click.command()
@click.option("--probe", is_flag=True, help="contact every mirror: reachable, latency, throughput")
@click.option(
    "--which",
    "which_spec",
    metavar="NAME[/VERSION[/DATE]]",
    help="say which channel would serve this container now (nothing is downloaded)",
)
@click.option("--json", "as_json", is_flag=True, help=json_option_help)
def sources(probe: bool, which_spec: str | None, as_json: bool) -> None:
    """List the sources images come from, in the order they are tried.

    \b
    Your sources from $NEURODESK_HOME/config.yaml come first, then the built-in channels in
    upstream's order: cvmfs (a mounted CVMFS repository, used in place), sif-artifacts (SIF
    files attached to registry images), object-storage (SIF files, all mirrors at once),
    registry-images. Override or remove a built-in one under 'defaults:' in config.yaml.
    Examples:
      neurodesk sources --probe
      neurodesk sources --which fsl/6.0.7.4
    """
    from neurodesk.sources.config import load_config
    from neurodesk.sources.probe import probe_sources, which

    paths = Paths.from_env()
    if which_spec:
        answer = which(paths, which_spec)
        if as_json:
            emit_json(answer.to_json())
        else:
            for source, said in answer.tried:
                console.print(f"  {source}: {said}", soft_wrap=True, markup=False)
            if answer.served_by:
                line = f"{answer.spec} would come from {answer.served_by} ({answer.where})"
            else:
                line = f"{answer.spec}: no source has it now"
            console.print(line, soft_wrap=True, markup=False)
        if answer.served_by is None:
            raise SystemExit(2)
        return
    rows = probe_sources(load_config(paths.config_file), paths, probe)
    if as_json:
        emit_json([r.to_json() for r in rows])
        return
    table = []
    for row in rows:
        state = "-" if row.reachable is None else ("ok" if row.reachable else "DOWN")
        table.append(
            (
                row.source,
                row.kind,
                row.mirror,
                state,
                _ms(row.latency_ms),
                _rate(row.throughput_mbps),
                row.error,
            )
        )
    print_table(None, ["SOURCE", "KIND", "MIRROR", "STATE", "LATENCY", "THROUGHPUT", "NOTE"], table)


def register(group: click.Group) -> None:
    group.add_command(sources)
