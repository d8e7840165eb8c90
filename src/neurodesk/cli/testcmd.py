"""``neurodesk test``: a recipe's tests, run inside its built image."""

from __future__ import annotations

import shutil
import sys

import click

from neurodesk.build.testing import TestResult, plan_tests, run_tests, scratch_root
from neurodesk.cli.output import console, emit_json, err_console, json_option_help
from neurodesk.paths import Paths
from neurodesk.recipe import find_recipe, load_recipe
from neurodesk.recipe.tests import RecipeTest
from neurodesk.store import Store

MARKS = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]", "error": "[red]ERROR[/]",
         "skip": "[yellow]skip[/]"}  # fmt: skip


@click.command("test")
@click.argument("recipe")
@click.option(
    "--image",
    "image_spec",
    metavar="VERSION[/BUILDDATE]",
    help="which build to test (default: the newest build of the recipe's version)",
)
@click.option("--timeout", default=600.0, show_default=True, help="seconds per test")
@click.option("--manual", is_flag=True, help="also run tests marked manual")
@click.option("--json", "as_json", is_flag=True, help=json_option_help)
def test(recipe: str, image_spec: str | None, timeout: float, manual: bool, as_json: bool) -> None:
    """Run RECIPE's tests inside its built image and print a pass/fail table.

    \b
    The tests are those of test.yaml beside build.yaml (and 'test' directives), plus the
    builtin deploy check: every deployed command exists, its '#!' interpreter exists and its
    shared libraries resolve (ldd, inside the image). Each test runs with /bin/sh -e in a fresh
    scratch directory, bound as its working directory, $HOME and $TMPDIR.
    Exits non-zero when any test fails.

    \b
    Examples:
      neurodesk build dcm2niix && neurodesk test dcm2niix
      neurodesk test ./recipes/mrtrix3 --json
    """
    paths = Paths.from_env()
    path = find_recipe(recipe)
    parsed = load_recipe(path)
    tests = plan_tests(path.parent)
    spec = f"{parsed.name}/{image_spec or parsed.version}"
    record = Store(paths.store).resolve(spec)

    def started(item: RecipeTest) -> None:
        if not as_json:
            err_console.print(f"  running {item.name} ...", markup=False)

    work = scratch_root(record.id)
    try:
        results = run_tests(
            record, tests, work, timeout=timeout, include_manual=manual, on_start=started
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    failed = [r for r in results if r.status in ("fail", "error")]
    if as_json:
        emit_json(
            {
                "image": record.id,
                "passed": not failed,
                "tests": [r.to_json() for r in results],
            }
        )
    else:
        print_results(record.id, results)
    if failed:
        sys.exit(1)


def print_results(image: str, results: list[TestResult]) -> None:
    from rich.table import Table

    table = Table(title=f"tests of {image}", show_edge=False, header_style="bold")
    for column in ("test", "result", "time", "detail"):
        table.add_column(column)
    for r in results:
        table.add_row(r.name, MARKS[r.status], f"{r.seconds:.1f} s", r.detail)
    console.print(table)
    for r in results:
        if r.status in ("fail", "error") and r.output:
            console.print(f"[bold]{r.name}[/] — last lines of its output:")
            for line in r.output:
                console.print(f"  | {line}", markup=False, soft_wrap=True)
    counts = {s: sum(r.status == s for r in results) for s in MARKS}
    console.print(
        f"{counts['pass']} passed, {counts['fail'] + counts['error']} failed"
        + (f", {counts['skip']} skipped" if counts["skip"] else "")
    )


def register(group: click.Group) -> None:
    group.add_command(test)
