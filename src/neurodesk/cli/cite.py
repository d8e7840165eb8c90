"""``neurodesk cite``: what to cite for the tools a project used, and a CITATION.cff."""

from __future__ import annotations

from pathlib import Path

import click

from neurodesk.errors import NeurodeskError
from neurodesk.paths import Paths
from neurodesk.repro.cite import FORMATS, from_batch, from_lock, from_store, render
from neurodesk.repro.lock import installed_or_loaded
from neurodesk.repro.lockfile import load_lock
from neurodesk.store.atomic import write_text


@click.command()
@click.argument("names", nargs=-1, metavar="[NAME[/VERSION[/DATE]]...]")
@click.option("--lock", "lock_path", type=click.Path(dir_okay=False, path_type=Path),
              help="the tools of this lock file")  # fmt: skip
@click.option("--batch", "batch_ref", metavar="ID", help="the image of this batch (id or dir)")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="text for people, bibtex for LaTeX, cff for a CITATION.cff")  # fmt: skip
@click.option("--title", help="project title (--format cff; default: this directory's name)")
@click.option("--author", "authors", multiple=True, metavar="'FAMILY, GIVEN'",
              help="project author (--format cff, repeatable)")  # fmt: skip
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="write to this file instead of standard output")  # fmt: skip
def cite(
    names: tuple[str, ...],
    lock_path: Path | None,
    batch_ref: str | None,
    fmt: str,
    title: str | None,
    authors: tuple[str, ...],
    output: Path | None,
) -> None:
    """What to cite for the tools you used: each tool's citation, its container, Neurodesk.

    \b
    Per tool: the citation its recipe gives (structured_readme.citation, from the image's
    /build.yaml, else the recipe, else the catalog), the container (name, version, build
    date, sha256 digest, and a reference to fetch it by), and the Neurodesk paper.
    Without NAMEs, --lock or --batch: every tool installed or loaded.

    \b
    Examples:
      neurodesk cite dcm2niix mrtrix3
      neurodesk cite --lock neurodesk.lock --format bibtex -o tools.bib
      neurodesk cite --lock neurodesk.lock --format cff --title "My study" \\
          --author "Doe, Jane" -o CITATION.cff
      neurodesk cite --batch dcm2niix-1ac58421b9
    """
    chosen = sum(bool(x) for x in (names, lock_path, batch_ref))
    if chosen > 1:
        raise NeurodeskError(
            "give tool names, --lock or --batch, not several", hint="pick one way to name tools"
        )
    paths = Paths.from_env()
    if lock_path is not None:
        tools = from_lock(paths, load_lock(lock_path))
    elif batch_ref is not None:
        tools = from_batch(paths, batch_ref)
    else:
        specs = list(names) or [s.spec for s in installed_or_loaded(paths)]
        if not specs:
            raise NeurodeskError(
                "no tool named and none installed or loaded",
                hint="write: neurodesk cite NAME, --lock FILE or --batch ID",
            )
        tools = from_store(paths, specs)
    text = render(tools, fmt, title or "", list(authors))
    if output is None:
        click.echo(text, nl=False)
    else:
        write_text(output, text)
        click.echo(f"wrote {output} ({len(tools)} tool(s))", err=True)


def register(group: click.Group) -> None:
    group.add_command(cite)
