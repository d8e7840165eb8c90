"""``neurodesk examples``: list the example notebooks, run them, render them to a site."""

from __future__ import annotations

from pathlib import Path

import click

from neurodesk.cli.output import console, emit_json, err_console, json_option_help, print_table
from neurodesk.errors import NeurodeskError
from neurodesk.paths import Paths
from neurodesk.repro.examples import DEFAULT_TIMEOUT, Outcome, discover, examples_dir, run_examples

dir_argument = click.argument(
    "directory", required=False, type=click.Path(file_okay=False, path_type=Path)
)


@click.group()
def examples() -> None:
    """The example notebooks (examples/): real work on generated data, in container kernels."""


@examples.command("list")
@dir_argument
@click.option("--json", "as_json", is_flag=True, help=json_option_help)
def list_examples(directory: Path | None, as_json: bool) -> None:
    """The notebooks, the images each needs and the kernel it runs in."""
    found = discover(directory or examples_dir())
    if as_json:
        emit_json(
            [
                {"name": e.name, "title": e.title, "images": list(e.images), "kernel": e.kernel,
                 "heavy": e.heavy}
                for e in found
            ]
        )  # fmt: skip
        return
    print_table(
        None,
        ["NAME", "IMAGES", "KERNEL", "TITLE"],
        [(e.name, ", ".join(e.images), e.kernel, e.title) for e in found],
    )


@examples.command("test")
@dir_argument
@click.option(
    "--html",
    "site",
    type=click.Path(file_okay=False, path_type=Path),
    help="where to write the static site (default: $NEURODESK_HOME/work/examples-site)",
)
@click.option("--only", multiple=True, metavar="NAME", help="run only this notebook (repeatable)")
@click.option("--timeout", type=float, default=DEFAULT_TIMEOUT, show_default=True,
              help="seconds one cell may take")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help=json_option_help)
def test_examples(
    directory: Path | None, site: Path | None, only: tuple[str, ...], timeout: float, as_json: bool
) -> None:
    """Run every notebook top to bottom; fail on any error cell; render them all to HTML.

    \b
    A notebook whose images are not in the store is skipped, with the reason (the heavy
    ones, nilearn, dipy and dcm2bids, take minutes to build: neurodesk build NAME first).
    Outputs of each run stay in $NEURODESK_HOME/work/examples/<name>/.
    Exits 1 when a notebook fails, naming its first failing cell.

    \b
    Examples:
      neurodesk examples test                        # examples/ of this checkout
      neurodesk examples test --only 01_dicom_to_nifti --html site/
    """
    paths = Paths.from_env()

    def say(outcome: Outcome) -> None:
        if not as_json:
            note = f" — {outcome.reason}" if outcome.reason else ""
            err_console.print(
                f"{outcome.status:8} {outcome.example.name} ({outcome.seconds:.1f} s){note}",
                soft_wrap=True,
                markup=False,
            )

    report = run_examples(
        paths,
        directory or examples_dir(),
        (site or paths.work / "examples-site").absolute(),
        only,
        timeout,
        say,
    )
    if as_json:
        emit_json({"site": str(report.site), "notebooks": [o.to_json() for o in report.outcomes]})
    else:
        counts = {
            s: sum(o.status == s for o in report.outcomes) for s in ("passed", "failed", "skipped")
        }
        console.print(
            f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped; "
            f"site: {report.site}/index.html",
            soft_wrap=True,
        )
    if report.failed:
        first = report.failed[0]
        raise NeurodeskError(
            f"{len(report.failed)} notebook(s) failed: {first.example.name}: {first.reason}",
            hint=f"see {report.site}/{first.page}",
        )


def register(group: click.Group) -> None:
    group.add_command(examples)
