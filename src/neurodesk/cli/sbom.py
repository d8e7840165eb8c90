"""``neurodesk sbom``: the packages inside an image as a CycloneDX or SPDX document."""

from __future__ import annotations

from pathlib import Path

import click

from neurodesk.cli.output import console, emit_json, err_console, print_table
from neurodesk.paths import Paths
from neurodesk.repro.sbom import FORMATS, image_inventory, render
from neurodesk.store import Store
from neurodesk.store.atomic import write_text


@click.command()
@click.argument("name", metavar="NAME[/VERSION[/DATE]]")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="cyclonedx",
              show_default=True, help="CycloneDX 1.6 JSON or SPDX 2.3 JSON")  # fmt: skip
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="write to this file instead of standard output")  # fmt: skip
def sbom(name: str, fmt: str, output: Path | None) -> None:
    """A software bill of materials of an image in the store: every package inside it.

    \b
    Read from the image's files, never by running it: dpkg's status database, rpm's
    (sqlite format), Python packages (dist-info and egg-info in site-/dist-packages),
    conda environments (conda-meta). Links leading out of the image are not followed.

    \b
    Examples:
      neurodesk sbom dcm2niix > dcm2niix.cdx.json
      neurodesk sbom mrtrix3/3.0.4 --format spdx -o mrtrix3.spdx.json
      neurodesk info dcm2niix --packages          # the same packages as a table
    """
    record = Store(Paths.from_env().store).resolve(name)
    text = render(record, fmt)
    if output is None:
        click.echo(text, nl=False)
    else:
        write_text(output, text)
        err_console.print(f"wrote {output}", soft_wrap=True)


def show_packages(name: str, as_json: bool) -> None:
    """The packages of the store's image ``name`` as a table (``info --packages``)."""
    record = Store(Paths.from_env().store).resolve(name)
    found = image_inventory(record)
    if as_json:
        emit_json(
            {
                "image": record.id,
                "digest": record.digest,
                "os": f"{found.os_id} {found.os_version}".strip(),
                "packages": [
                    {"type": p.ecosystem, "name": p.name, "version": p.version, "purl": p.purl}
                    for p in found.packages
                ],
                "notes": found.notes,
            }
        )
        return
    console.print(f"{record.id}: {len(found.packages)} package(s)", soft_wrap=True)
    print_table(
        None,
        ["TYPE", "NAME", "VERSION"],
        [(p.ecosystem, p.name, p.version) for p in found.packages],
    )
    for note in found.notes:
        console.print(f"note: {note}", soft_wrap=True, markup=False)


def register(group: click.Group) -> None:
    group.add_command(sbom)
