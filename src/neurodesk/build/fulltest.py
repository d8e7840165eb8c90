"""Running a ``fulltest.yaml`` suite inside a built image (``neurodesk test NAME``).

The suite runs in one scratch directory (under /tmp, bound into the image at the same path, as
working directory, ``$HOME`` and ``$TMPDIR``), so paths mean the same thing on the host and in
the image: ``test_data`` values are made absolute against it, required dataset files are copied
into ``<scratch>/<dataset>/<file>``, and ``validate`` checks read outputs on the host (images
with nibabel). Order of events, as upstream's runner:

1. datasets are found (``--data DIR``, ``$NEURODESK_TEST_DATA``, the cache) or fetched from
   OpenNeuro into the cache; tests that need a missing one are skipped, with one line naming
   the files;
2. ``setup.host_script`` on the host, ``setup.script`` in the image (a failure fails all);
3. the tests, each with bash in the image (``env``, ``env_setup`` first); a test whose
   ``depends_on`` failed or was skipped is skipped; independent tests run in parallel with
   ``jobs`` > 1;
4. ``cleanup.script`` and ``cleanup.host_script`` on the host.

Commands run in the image through :func:`neurodesk.build.testing.run_in_image`.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from neurodesk.build.datasets import DatasetSource, MissingFiles, provide_datasets
from neurodesk.build.testing import OUTPUT_TAIL, TestResult, run_in_image
from neurodesk.recipe.fulltest import FullTest, Suite, Validation, substitute
from neurodesk.store import ImageRecord

HOST_TIMEOUT = 120.0
MANUAL_TAG = "manual"


@dataclass
class SuiteRun:
    """The results of one suite, in the suite's test order."""

    suite: str
    image: str
    results: list[TestResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[TestResult]:
        return [r for r in self.results if r.status in ("fail", "error")]


def _tail(text: str) -> list[str]:
    return text.splitlines()[-OUTPUT_TAIL:]


def select_tests(suite: Suite, tags: list[str], include_manual: bool) -> list[FullTest]:
    """Tests having one of ``tags`` (all when none given) plus what they depend on."""
    tests = suite.tests
    if not include_manual:
        tests = [t for t in tests if MANUAL_TAG not in t.tags]
    if not tags:
        return tests
    by_name = {t.name: t for t in suite.tests}
    wanted = {t.name for t in tests if set(t.tags) & set(tags)}
    pending = list(wanted)
    while pending:
        for dep in by_name[pending.pop()].depends_on:
            if dep in by_name and dep not in wanted:
                wanted.add(dep)
                pending.append(dep)
    return [t for t in suite.tests if t.name in wanted]


class _Runner:
    def __init__(
        self,
        record: ImageRecord,
        suite: Suite,
        work: Path,
        variables: dict[str, str],
    ) -> None:
        self.record = record
        self.suite = suite
        self.work = work
        self.variables = variables
        self.counter = 0
        self.lock = threading.Lock()

    def _script_file(self, body: str, suffix: str = ".sh") -> Path:
        with self.lock:
            self.counter += 1
            path = self.work / f".neurodesk-test-{self.counter}{suffix}"
        path.write_text(body, encoding="utf-8")
        path.chmod(0o755)
        return path

    def prologue(self, env_setup: str | None) -> list[str]:
        lines = [f"export {k}={shlex.quote(v)}" for k, v in self.suite.env.items()]
        setup = self.suite.env_setup if env_setup is None else env_setup
        if setup:
            lines.append(substitute(setup, self.variables))
        return lines

    def in_image(self, body: str, timeout: float) -> tuple[int, str, bool]:
        path = self._script_file(body)
        launcher = (
            f"if command -v bash >/dev/null 2>&1; then exec bash {shlex.quote(str(path))};"
            f" else exec sh {shlex.quote(str(path))}; fi"
        )
        try:
            run = run_in_image(self.record, launcher, self.work, timeout, shell_flags="-u")
        finally:
            path.unlink(missing_ok=True)
        return run.code, run.output, run.timed_out

    def on_host(self, script: str, timeout: float = HOST_TIMEOUT) -> tuple[int, str]:
        env = {**os.environ, **self.suite.env, **self.variables}
        try:
            proc = subprocess.run(
                ["bash", "-c", substitute(script, self.variables)],
                cwd=self.work,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return 124, f"timed out after {timeout:g} s"
        return proc.returncode, proc.stdout

    def run_test(self, test: FullTest) -> TestResult:
        started = time.monotonic()
        timeout = test.timeout or self.suite.default_timeout
        lines = ["#!/usr/bin/env bash", *self.prologue(test.env_setup)]
        if test.is_script:
            body = substitute(test.command, self.variables)
            script = self._script_file(body, self.suite.script_ext)
            runner = self.suite.script_runner or "bash"
            lines.append(f"{runner} {shlex.quote(str(script))}")
        else:
            script = None
            lines.append(substitute(test.command, self.variables))
        try:
            code, output, timed_out = self.in_image("\n".join(lines) + "\n", timeout)
        finally:
            if script is not None:
                script.unlink(missing_ok=True)
        elapsed = time.monotonic() - started
        verdict = self.judge(test, code, output, timed_out)
        if verdict is None:
            return TestResult(test.name, "pass", elapsed, "", _tail(output))
        return TestResult(test.name, "fail", elapsed, verdict, _tail(output))

    def judge(self, test: FullTest, code: int, output: str, timed_out: bool) -> str | None:
        """Why the test failed, or None when it passed."""
        if timed_out:
            return f"timed out after {test.timeout or self.suite.default_timeout:g} s"
        if not test.ignore_exit_code:
            if test.expected_exit_code_not is not None:
                if code == test.expected_exit_code_not:
                    return f"exit code should not be {code}"
            elif code != test.expected_exit_code:
                return f"expected exit code {test.expected_exit_code}, got {code}"
        for expected in test.expected_output:
            wanted = substitute(expected, self.variables)
            if wanted and wanted not in output:
                return f"output lacks {wanted!r}"
        for check in test.validate:
            problem = validate(check, self.variables, self.work)
            if problem:
                return problem
        return None


def _image_shape(path: Path) -> tuple[int, ...]:
    import nibabel

    return tuple(int(n) for n in nibabel.load(str(path)).shape)  # type: ignore[attr-defined]


def validate(check: Validation, variables: dict[str, str], work: Path) -> str | None:
    """Run one ``validate`` check on the host; the reason it fails, or None."""
    paths = [work / substitute(p, variables) for p in check.paths]
    if check.kind == "output_exists":
        return None if paths[0].exists() else f"output not found: {paths[0]}"
    if check.kind == "output_dir_not_empty":
        ok = paths[0].is_dir() and any(paths[0].iterdir())
        return None if ok else f"output directory missing or empty: {paths[0]}"
    try:
        shapes = [_image_shape(p) for p in paths]
    except FileNotFoundError as exc:
        return f"{check.kind}: no such file {exc.filename or paths[0]}"
    except Exception as exc:  # nibabel raises many kinds for files that are not images
        return f"{check.kind}: cannot read the image: {type(exc).__name__}: {exc}"
    if check.kind == "same_dimensions":
        return None if shapes[0] == shapes[1] else f"dimensions differ: {shapes[0]} vs {shapes[1]}"
    dims = 3 if check.kind == "is_3d" else 4
    # A trailing axis of length 1 does not make an image 4-D (nor 3-D).
    shape = shapes[0]
    while len(shape) > dims and shape[-1] == 1:
        shape = shape[:-1]
    return (
        None if len(shape) == dims else f"{paths[0].name} is {len(shape)}-D {shape}, not {dims}-D"
    )


def suite_variables(suite: Suite, work: Path) -> dict[str, str]:
    """``test_data`` made absolute against ``work``, then the suite's plain top-level values."""
    variables = {}
    for key, value in suite.test_data.items():
        path = Path(value)
        variables[key] = str(path if path.is_absolute() else work / path)
    for key, value in suite.variables.items():
        variables.setdefault(key, substitute(value, suite.variables))
    return variables


def _needs(test: FullTest, words: list[str]) -> bool:
    """Whether a test mentions a dataset, one of its files, or a variable pointing into it."""
    texts = [test.command, *(p for v in test.validate for p in v.paths), *test.expected_output]
    for word in words:
        for text in texts:
            at = text.find(word)
            # "$t1" must not match "$t1w": the next character may not continue the name.
            while at >= 0:
                end = at + len(word)
                if not (word.startswith("$") and end < len(text) and text[end].isalnum()):
                    return True
                at = text.find(word, end)
    return False


def run_suite(
    record: ImageRecord,
    suite: Suite,
    work: Path,
    *,
    tags: list[str] | None = None,
    jobs: int = 1,
    include_manual: bool = False,
    sources: DatasetSource | None = None,
    on_result: Callable[[TestResult], None] | None = None,
) -> SuiteRun:
    """Run ``suite`` in ``record``; ``work`` (under /tmp) becomes the suite's directory."""
    work.mkdir(parents=True, exist_ok=True)
    out = SuiteRun(suite.name, record.id)
    tests = select_tests(suite, tags or [], include_manual)
    variables = suite_variables(suite, work)
    runner = _Runner(record, suite, work, variables)

    def report(result: TestResult) -> None:
        out.results.append(result)
        if on_result:
            on_result(result)

    # 1. datasets
    skipped: dict[str, str] = {}
    if suite.required_files:
        missing: list[MissingFiles] = provide_datasets(suite.required_files, work, sources)
        for gap in missing:
            line = f"dataset {gap.dataset} unavailable ({gap.reason}): {', '.join(gap.files)}"
            out.notes.append(line)
            keys = [k for k, v in suite.test_data.items() if gap.dataset in v]
            words = [gap.dataset, *gap.files, *(f"${k}" for k in keys)]
            words += [f"${{{k}}}" for k in keys]
            for test in tests:
                if test.name not in skipped and _needs(test, words):
                    skipped[test.name] = f"needs {gap.dataset}: {', '.join(gap.files)}"
    if "output_dir" in variables:
        Path(variables["output_dir"]).mkdir(parents=True, exist_ok=True)

    # 2. setup
    failure = ""
    if suite.setup_host_script:
        code, output = runner.on_host(suite.setup_host_script)
        if code != 0:
            failure = f"setup.host_script exited {code}: {' / '.join(_tail(output)[-3:])}"
    if not failure and suite.setup_script:
        body = "\n".join(["#!/usr/bin/env bash", *runner.prologue(None), suite.setup_script])
        code, output, timed_out = runner.in_image(substitute(body, variables), HOST_TIMEOUT)
        if code != 0:
            reason = "timed out" if timed_out else f"exited {code}"
            failure = f"setup.script {reason}: {' / '.join(_tail(output)[-3:])}"
    if failure:
        for test in tests:
            report(TestResult(test.name, "error", 0.0, failure))
        _cleanup(runner, suite, out)
        return out

    # 3. the tests, in dependency order
    names = {t.name for t in tests}
    outcome: dict[str, str] = {}
    results: dict[str, TestResult] = {}
    remaining = list(tests)

    def ready(test: FullTest) -> bool:
        return all(d in outcome or d not in names for d in test.depends_on)

    def blocked(test: FullTest) -> str | None:
        bad = [d for d in test.depends_on if outcome.get(d, "pass") != "pass"]
        return f"depends on {', '.join(bad)}, which did not pass" if bad else None

    def finish(result: TestResult) -> None:
        outcome[result.name] = result.status
        results[result.name] = result
        if on_result:
            on_result(result)

    def start(test: FullTest) -> TestResult | None:
        """A skip result when the test cannot run, else None (it may start)."""
        reason = skipped.get(test.name) or blocked(test)
        return TestResult(test.name, "skip", 0.0, reason) if reason else None

    if jobs <= 1:  # file order, as upstream (a dependency later in the file does not wait)
        for test in tests:
            finish(start(test) or _guarded(runner, test))
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            running: dict[Future[TestResult], FullTest] = {}
            while remaining or running:
                for test in [t for t in remaining if ready(t)]:
                    if len(running) >= jobs:
                        break
                    remaining.remove(test)
                    if (skip := start(test)) is not None:
                        finish(skip)
                    else:
                        running[pool.submit(_guarded, runner, test)] = test
                if running:
                    done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                    for future in done:
                        running.pop(future)
                        finish(future.result())
                elif remaining and not any(ready(t) for t in remaining):
                    for test in remaining:  # a dependency cycle: nothing can start
                        finish(TestResult(test.name, "skip", 0.0, "its dependencies form a cycle"))
                    remaining = []
    out.results.extend(results[t.name] for t in tests if t.name in results)
    _cleanup(runner, suite, out)
    return out


def _guarded(runner: _Runner, test: FullTest) -> TestResult:
    try:
        return runner.run_test(test)
    except Exception as exc:  # a bug of ours must not lose the other tests' results
        return TestResult(test.name, "error", 0.0, f"internal error {type(exc).__name__}: {exc}")


def _cleanup(runner: _Runner, suite: Suite, out: SuiteRun) -> None:
    for key, script in (("cleanup.script", suite.cleanup_script),
                        ("cleanup.host_script", suite.cleanup_host_script)):  # fmt: skip
        if script:
            code, output = runner.on_host(script)
            if code != 0:
                out.notes.append(f"{key} exited {code}: {' / '.join(_tail(output)[-2:])}")
