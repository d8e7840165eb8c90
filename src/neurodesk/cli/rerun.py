"""``neurodesk rerun``: run a batch task again from its provenance record, compare outputs."""

from __future__ import annotations

from pathlib import Path

import click

from neurodesk.cli.output import console, emit_json, json_option_help
from neurodesk.errors import NeurodeskError
from neurodesk.paths import Paths
from neurodesk.repro.rerun import load_record, rerun
from neurodesk.runtime.launch import RUNTIMES


class NotReproducedError(NeurodeskError):
    exit_code = 1


@click.command("rerun")
@click.argument("record_path", metavar="RECORD", type=click.Path(path_type=Path))
@click.option(
    "--runtime", type=click.Choice(RUNTIMES), help="run with this runtime (default: bwrap)"
)
@click.option(
    "--prefix",
    type=click.Path(file_okay=False, path_type=Path),
    help="run through the wrappers of this install tree instead of 'neurodesk exec'",
)
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help="new or empty directory for the outputs (default: $NEURODESK_HOME/work/rerun/...)",
)
@click.option("--json", "as_json", is_flag=True, help=json_option_help)
def rerun_cmd(
    record_path: Path, runtime: str | None, prefix: Path | None, output: Path | None, as_json: bool
) -> None:
    """Re-run a batch task from its provenance RECORD in the recorded image; compare outputs.

    \b
    RECORD is a task's record.json (or its directory): $NEURODESK_HOME/batches/<id>/tasks/<N>/.
    The image must be the recorded one (same digest: 'neurodesk sync' a lock file to get it),
    and every input must be here with its recorded sha256. The outputs go to a fresh
    directory, bound at the recorded output directory, so the originals are never touched.
    Every output's sha256 is compared with the record; exits 1 unless all are identical.

    \b
    Examples:
      neurodesk rerun ~/.local/share/neurodesk/batches/dcm2niix-1ac5/tasks/0000/record.json
      neurodesk rerun RECORD --runtime podman
      neurodesk rerun RECORD --prefix /opt/neurodesk      # through that tree's wrappers
    """
    record = load_record(record_path)
    result = rerun(Paths.from_env(), record, output, runtime, prefix)
    if as_json:
        emit_json(result.to_json())
    else:
        for rel in result.same:
            console.print(f"same     {rel}", soft_wrap=True, markup=False)
        for label, items in (("DIFFERS ", result.differs), ("MISSING ", result.missing),
                             ("EXTRA   ", result.extra)):  # fmt: skip
            for rel in items:
                console.print(f"{label} {rel}", soft_wrap=True, markup=False)
        console.print(f"outputs in {result.output_dir}", soft_wrap=True)
    if result.identical:
        if not as_json:
            console.print(
                f"reproduced: {len(result.same)} output(s) bit for bit identical to the record",
                soft_wrap=True,
            )
        return
    problems = len(result.differs) + len(result.missing) + len(result.extra)
    code = f"exit code {result.exit_code}, recorded {result.recorded_exit_code}; "
    raise NotReproducedError(
        f"not reproduced: {code if result.exit_code != result.recorded_exit_code else ''}"
        f"{problems} output(s) differ from the record",
        hint=f"see the log {result.log}",
    )


def register(group: click.Group) -> None:
    group.add_command(rerun_cmd)
