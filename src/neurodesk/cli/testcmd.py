"""``neurodesk test``: a recipe's tests, run inside its built image."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click

from neurodesk.build.datasets import DatasetSource
from neurodesk.build.fulltest import run_suite
from neurodesk.build.junit import write_junit
from neurodesk.build.testing import TestResult, plan_tests, run_tests, scratch_root
from neurodesk.cli.output import console, emit_json, err_console, json_option_help
from neurodesk.errors import NeurodeskError, NotFoundError
from neurodesk.paths import Paths
from neurodesk.recipe import find_recipe, load_recipe
from neurodesk.recipe.fulltest import load_fulltest
from neurodesk.recipe.load import recipe_dirs
from neurodesk.recipe.tests import RecipeTest
from neurodesk.store import Store

MARKS = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]", "error": "[red]ERROR[/]",
         "skip": "[yellow]skip[/]"}  # fmt: skip


@dataclass
class Options:
    image_spec: str | None = None
    timeout: float = 600.0
    manual: bool = False
    data: Path | None = None
    offline: bool = False
    tags: list[str] = field(default_factory=list)
    jobs: int = 1
    quiet: bool = False


@dataclass
class Outcome:
    image: str
    results: list[TestResult]
    notes: list[str]

    @property
    def failed(self) -> bool:
        return any(r.status in ("fail", "error") for r in self.results)


def run_recipe_tests(recipe: str, opts: Options) -> Outcome:
    """test.yaml tests, the deploy check and the fulltest.yaml suite of one recipe."""
    paths = Paths.from_env()
    path = find_recipe(recipe)
    parsed = load_recipe(path)
    tests = plan_tests(path.parent)
    suite = load_fulltest(path.parent, recipe=parsed)
    record = Store(paths.store).resolve(f"{parsed.name}/{opts.image_spec or parsed.version}")

    def started(item: RecipeTest) -> None:
        if not opts.quiet:
            err_console.print(f"  running {item.name} ...", markup=False)

    def finished(result: TestResult) -> None:
        if not opts.quiet:
            err_console.print(f"  {result.status:5} {result.name}", markup=False)

    work = scratch_root(record.id)
    notes: list[str] = []
    try:
        results = run_tests(
            record, tests, work / "tests", timeout=opts.timeout,
            include_manual=opts.manual, on_start=started,
        )  # fmt: skip
        if suite is not None:
            sources = DatasetSource.configured(opts.data, offline=opts.offline)
            run = run_suite(
                record, suite, work / "fulltest", tags=opts.tags, jobs=opts.jobs,
                include_manual=opts.manual, sources=sources, on_result=finished,
            )  # fmt: skip
            results += run.results
            notes += run.notes
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Outcome(record.id, results, notes)


@click.command("test")
@click.argument("recipes", nargs=-1, metavar="[NAME|PATH]...")
@click.option(
    "--image",
    "image_spec",
    metavar="VERSION[/BUILDDATE]",
    help="which build to test (default: the newest build of the recipe's version)",
)
@click.option("--timeout", default=600.0, show_default=True, help="seconds per test.yaml test")
@click.option("--manual", is_flag=True, help="also run tests marked manual")
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="a directory holding required datasets as DIR/<dataset>/<file>",
)
@click.option("--offline", is_flag=True, help="never download datasets (skip what is missing)")
@click.option("--tags", default="", metavar="T1,T2", help="run only fulltest tests with a tag")
@click.option("--jobs", "-j", default=1, show_default=True, type=click.IntRange(1, 64),
              help="run up to N independent fulltest tests at once")  # fmt: skip
@click.option(
    "--junit",
    "junit",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="also write a JUnit XML report to FILE",
)
@click.option("--all", "test_all", is_flag=True, help="test every recipe that has a built image")
@click.option(
    "--recipes",
    "recipes_root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="with --all: a recipes directory (default: the shipped recipes)",
)
@click.option("--json", "as_json", is_flag=True, help=json_option_help)
def test(
    recipes: tuple[str, ...],
    image_spec: str | None,
    timeout: float,
    manual: bool,
    data: Path | None,
    offline: bool,
    tags: str,
    jobs: int,
    junit: Path | None,
    test_all: bool,
    recipes_root: Path | None,
    as_json: bool,
) -> None:
    """Run a recipe's tests inside its built image and print a pass/fail/skip table.

    \b
    The tests are fulltest.yaml beside build.yaml (commands or scripts with expected exit codes
    and output, validate checks of the outputs, depends_on, tags, setup/cleanup, datasets),
    test.yaml's tests, and the builtin deploy check (every deployed command exists, its '#!'
    interpreter exists, its shared libraries resolve). Exits non-zero when any test fails.

    \b
    Datasets named under required_files come from --data DIR, $NEURODESK_TEST_DATA, the cache,
    or are downloaded from OpenNeuro ($NEURODESK_OPENNEURO_URL); tests needing a missing one
    are skipped, with one line naming the files.

    \b
    Examples:
      neurodesk build dcm2niix && neurodesk test dcm2niix
      neurodesk test mrtrix3 --tags quick --jobs 2 --junit report.xml
      neurodesk test --all --recipes ~/neurocontainers/recipes --data ~/openneuro
    """
    opts = Options(
        image_spec, timeout, manual, data, offline,
        [t for t in tags.split(",") if t], jobs, quiet=as_json,
    )  # fmt: skip
    names = list(recipes)
    if test_all:
        names += [str(p) for p in recipe_dirs(recipes_root)]
    if not names:
        raise click.UsageError("name a recipe (or a path to one) or pass --all")
    if len(names) == 1 and not test_all:
        outcome = run_recipe_tests(names[0], opts)
        _report([outcome], as_json, junit)
        if outcome.failed:
            sys.exit(1)
        return
    outcomes: list[Outcome] = []
    passed = failed = refused = unbuilt = crashed = 0
    for name in names:
        try:
            outcome = run_recipe_tests(name, opts)
        except NotFoundError as exc:
            unbuilt += 1
            err_console.print(f"not built: {name}: {exc}", markup=False, soft_wrap=True)
            continue
        except NeurodeskError as exc:
            refused += 1
            err_console.print(f"refused: {name}: {exc}", markup=False, soft_wrap=True)
            continue
        except Exception as exc:  # a bug of ours: count it and go on with the others
            crashed += 1
            err_console.print(f"traceback: {name}: {type(exc).__name__}: {exc}", markup=False)
            continue
        outcomes.append(outcome)
        failed += outcome.failed
        passed += not outcome.failed
    _report(outcomes, as_json, junit)
    summary = (
        f"{len(names)} recipes: {passed} passed, {failed} failed, {refused} refused,"
        f" {unbuilt} not built, {crashed} tracebacks"
    )
    (err_console if as_json else console).print(summary, markup=False)
    if failed or refused or crashed:
        sys.exit(1)


def _report(outcomes: list[Outcome], as_json: bool, junit: Path | None) -> None:
    if junit is not None:
        write_junit(junit, [(o.image, o.results) for o in outcomes])
    if as_json:
        items = [
            {
                "image": o.image,
                "passed": not o.failed,
                "tests": [r.to_json() for r in o.results],
                "notes": o.notes,
            }
            for o in outcomes
        ]
        emit_json(items[0] if len(items) == 1 else items)
        return
    for outcome in outcomes:
        print_results(outcome.image, outcome.results)
        for note in outcome.notes:
            console.print(f"note: {note}", markup=False, soft_wrap=True)


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
