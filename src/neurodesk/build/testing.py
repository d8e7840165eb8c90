"""Running a recipe's tests inside its built image (``neurodesk test``).

Each test runs through the runtime interface (``runtime.execute.run_in_image``: the same rules
as a wrapper, ``neurodesk exec`` and a batch task), in a fresh
scratch directory bound read-write as its working directory, ``$HOME`` and ``$TMPDIR``, with
``/bin/sh -e``. The builtin deploy check runs one small POSIX script inside the image: every
deployed command exists and is executable, its ``#!`` interpreter exists, and ``ldd`` finds all
of its shared libraries.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from neurodesk.recipe.tests import RecipeTest, load_tests
from neurodesk.runtime import Bind
from neurodesk.runtime.execute import run_in_image as run_argv_in_image
from neurodesk.store import ImageRecord

Status = Literal["pass", "fail", "error", "skip"]
DEPLOY_CHECK = "test_deploy.sh"
OUTPUT_TAIL = 20

# Runs inside the image. Prints one line per deployed command: "<VERDICT> <path> [detail]".
DEPLOY_SCRIPT = r"""
check() {
  p=$1
  if [ ! -e "$p" ]; then echo "MISSING $p"; return; fi
  if [ -d "$p" ] || [ ! -x "$p" ]; then echo "NOTEXEC $p"; return; fi
  first=
  IFS= read -r first < "$p" 2>/dev/null || true
  case $first in
    '#!'*)
      set -- ${first#??}
      interp=${1:-}
      if [ ! -x "$interp" ]; then echo "NOINTERP $p $interp"; return; fi
      case $interp in
        */env) if [ -n "${2:-}" ] && ! command -v "$2" >/dev/null 2>&1; then
                 echo "NOINTERP $p $2"; return; fi ;;
      esac ;;
  esac
  # Only ldd and shell builtins here: the image's sed or grep may be what is broken.
  missing=
  ldd "$p" > "${TMPDIR:-/tmp}/.ldd" 2>/dev/null || true
  while IFS=" $TAB" read -r lib arrow rest; do
    case "$arrow $rest" in *"not found"*) missing="$missing$lib ";; esac
  done < "${TMPDIR:-/tmp}/.ldd"
  if [ -n "$missing" ]; then echo "NOLIB $p $missing"; return; fi
  echo "OK $p"
}
TAB=$(printf '\t')
IFS=:
for d in ${DEPLOY_PATH:-}; do
  IFS=' '
  if [ ! -d "$d" ]; then echo "MISSING $d"; continue; fi
  for f in "$d"/*; do
    [ -f "$f" ] && [ -x "$f" ] && check "$f"
  done
  IFS=:
done
for b in ${DEPLOY_BINS:-}; do
  IFS=' '
  found=$(command -v "$b" 2>/dev/null) || { echo "MISSING $b"; IFS=:; continue; }
  check "$found"
  IFS=:
done
"""

VERDICTS = {
    "MISSING": "does not exist",
    "NOTEXEC": "is not an executable file",
    "NOINTERP": "interpreter missing",
    "NOLIB": "unresolved libraries",
}


@dataclass
class TestResult:
    name: str
    status: Status
    seconds: float
    detail: str = ""
    output: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Run:
    code: int
    output: str
    timed_out: bool = False


def run_in_image(
    record: ImageRecord, script: str, scratch: Path, timeout: float, shell_flags: str = "-e"
) -> Run:
    """Run ``script`` with ``/bin/sh`` in ``record``'s image, ``scratch`` as cwd and home."""
    environ = {"HOME": str(scratch), "TMPDIR": str(scratch), "LANG": "C.UTF-8"}
    result = run_argv_in_image(
        record,
        ["/bin/sh", shell_flags, "-c", script],
        cwd=str(scratch),
        binds=[Bind(str(scratch), str(scratch))],
        timeout=timeout,
        environ=environ,
    )
    return Run(result.code, result.output, timed_out=result.timed_out)


def _tail(text: str) -> list[str]:
    return text.splitlines()[-OUTPUT_TAIL:]


def deploy_check(record: ImageRecord, scratch: Path, timeout: float) -> TestResult:
    started = time.monotonic()
    run = run_in_image(record, DEPLOY_SCRIPT, scratch, timeout, shell_flags="-u")
    elapsed = time.monotonic() - started
    verdicts = [line.split(" ", 2) for line in run.output.splitlines() if line.strip()]
    checked = [v for v in verdicts if v[0] in ("OK", *VERDICTS)]
    bad = [v for v in checked if v[0] != "OK"]
    if run.code != 0 or run.timed_out:
        return TestResult(
            DEPLOY_CHECK, "error", elapsed, f"the check exited {run.code}", _tail(run.output)
        )
    if not checked:
        return TestResult(DEPLOY_CHECK, "fail", elapsed, "the image deploys no commands")
    if bad:
        detail = "; ".join(
            f"{v[1]}: {VERDICTS[v[0]]}" + (f" ({v[2].strip()})" if len(v) > 2 else "") for v in bad
        )
        return TestResult(DEPLOY_CHECK, "fail", elapsed, detail, _tail(run.output))
    return TestResult(DEPLOY_CHECK, "pass", elapsed, f"{len(checked)} command(s) resolve")


def script_test(record: ImageRecord, test: RecipeTest, scratch: Path, timeout: float) -> TestResult:
    started = time.monotonic()
    output: list[str] = []
    if test.prep:
        prep = run_in_image(record, test.prep, scratch, timeout)
        output += _tail(prep.output)
        if prep.code != 0:
            detail = "prep timed out" if prep.timed_out else f"prep exited {prep.code}"
            return TestResult(test.name, "error", time.monotonic() - started, detail, output)
    run = run_in_image(record, test.script or "", scratch, timeout)
    elapsed = time.monotonic() - started
    if run.timed_out:
        return TestResult(
            test.name, "fail", elapsed, f"timed out after {timeout:g} s", _tail(run.output)
        )
    if run.code != 0:
        return TestResult(test.name, "fail", elapsed, f"exited {run.code}", _tail(run.output))
    return TestResult(test.name, "pass", elapsed, "", _tail(run.output))


def scratch_root(image_id: str) -> Path:
    """Where the scratch directories of one ``neurodesk test`` run go (removed afterwards)."""
    base = Path("/tmp") if Path("/tmp").is_dir() else Path(tempfile.gettempdir())
    return Path(tempfile.mkdtemp(prefix=f"neurodesk-test-{image_id}-", dir=base))


def plan_tests(recipe_dir: Path) -> list[RecipeTest]:
    """The recipe's tests, with the builtin deploy check added when the recipe lacks it."""
    tests = load_tests(recipe_dir)
    if not any(t.builtin == DEPLOY_CHECK for t in tests):
        tests.append(RecipeTest(name=DEPLOY_CHECK, builtin="test_deploy.sh"))
    return tests


def run_tests(
    record: ImageRecord,
    tests: list[RecipeTest],
    work: Path,
    *,
    timeout: float = 600,
    include_manual: bool = False,
    on_result: Callable[[TestResult], None] | None = None,
    on_start: Callable[[RecipeTest], None] | None = None,
) -> list[TestResult]:
    """Run ``tests`` in ``record``, each in its own scratch directory under ``work``.

    ``work`` should be under /tmp: the runtime binds /tmp from the host, while a directory
    below one of the image's own (``/root``, ``/opt``) could not get a mount point.
    """
    work.mkdir(parents=True, exist_ok=True)
    results: list[TestResult] = []
    for test in tests:
        if test.manual and not include_manual:
            result = TestResult(test.name, "skip", 0.0, "manual test")
        else:
            if on_start:
                on_start(test)
            scratch = Path(tempfile.mkdtemp(prefix="test-", dir=work))
            try:
                if test.builtin == DEPLOY_CHECK:
                    result = deploy_check(record, scratch, timeout)
                else:
                    result = script_test(record, test, scratch, timeout)
                if test.builtin == DEPLOY_CHECK and test.name != DEPLOY_CHECK:
                    result.name = test.name
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        results.append(result)
        if on_result:
            on_result(result)
    return results
