"""``neurodesk export``: write an image of the store as a single file (a SIF container)."""

from __future__ import annotations

from pathlib import Path

import click

from neurodesk.cli.output import console, emit_json, json_option_help
from neurodesk.image.sif_write import COMPRESSIONS, write_sif
from neurodesk.paths import Paths
from neurodesk.store import Store


@click.command()
@click.argument("image", metavar="NAME[/VERSION[/DATE]]")
@click.option(
    "--sif",
    "sif",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="write a SIF file here (Apptainer/Singularity format)",
)
@click.option(
    "--compression",
    type=click.Choice(COMPRESSIONS),
    default="gzip",
    show_default=True,
    help="squashfs compression of the system partition (gzip runs everywhere)",
)
@click.option("--json", "as_json", is_flag=True, help=json_option_help)
def export(image: str, sif: Path, compression: str, as_json: bool) -> None:
    """Write IMAGE from the local store as a SIF file.

    The image's root filesystem becomes the SIF's squashfs system partition (at offset 32768),
    its environment and labels go to /.singularity.d where the image lacks them. The file runs
    with 'apptainer exec FILE CMD', mounts with 'squashfuse -o offset=32768 FILE DIR', unpacks
    with 'unsquashfs -o 32768 FILE', and comes back with 'neurodesk import FILE'. It appears
    complete or not at all.

    \b
    Example:
      neurodesk export dcm2niix --sif dcm2niix_1.0.20220720_20261121.sif
    """
    record = Store(Paths.from_env().store).resolve(image)
    written = write_sif(record.rootfs, sif, record.env, record.labels, compression=compression)
    if as_json:
        emit_json(
            {
                "image": record.id,
                "sif": str(written.path),
                "size": written.size,
                "partition_offset": written.partition_offset,
                "partition_size": written.partition_size,
            }
        )
        return
    console.print(
        f"exported {record.id} → {written.path} ({written.size} bytes, "
        f"squashfs at offset {written.partition_offset})",
        markup=False,
    )


def register(group: click.Group) -> None:
    group.add_command(export)
