"""``neurodesk demo``."""

from __future__ import annotations

import click

from neurodesk.cli.output import console
from neurodesk.cli.progress import PhaseReporter
from neurodesk.demo.run import STEPS, check_requirements, run_demo
from neurodesk.paths import Paths


@click.command()
def demo() -> None:
    """Run the whole system once on dcm2niix, end to end.

    Builds the dcm2niix image from its recipe (making a Debian base with debootstrap when none
    can be pulled), stores and installs it, writes a synthetic DICOM series, converts it by
    calling plain 'dcm2niix' through the installed wrapper, and checks the NIfTI with nibabel.
    """
    paths = Paths.from_env()
    check_requirements(paths)
    with PhaseReporter(STEPS) as reporter:
        result = run_demo(paths, reporter)
    check = result.check
    console.print(
        f"[bold green]demo passed:[/] {result.nifti} — {'x'.join(map(str, check.shape))} voxels "
        f"of {'x'.join(f'{z:g}' for z in check.zooms)} mm, {''.join(check.axcodes)}, "
        f"converted by {result.image_id}",
        soft_wrap=True,
    )


def register(group: click.Group) -> None:
    group.add_command(demo)
