"""Running a command in an image as a child process: the one function batch tasks, recipe
tests and any other Python caller use (``neurodesk exec`` replaces itself instead).

:func:`run_in_image` is a stable interface::

    run_in_image(record, argv, env=None, cwd=None, binds=(), timeout=None, ...) -> RunResult

``argv`` runs in ``record``'s image with the RunSpec rules (the same binds, environment,
identity and working directory as a wrapper or ``neurodesk exec``), through the runtime chosen
as everywhere else. Standard input is empty unless ``stdin`` is given; the output (stdout and
stderr merged) is captured, or written to ``output`` (a binary file) when given. On timeout the
program gets SIGTERM (its traps run), then SIGKILL after ``grace`` seconds. The result names the
runtime and version that actually ran, and the full command line.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO

from neurodesk.runtime.base import Launch
from neurodesk.runtime.launch import prepare
from neurodesk.runtime.spec import Bind, RunSpec, build_runspec
from neurodesk.store import ImageRecord


@dataclass
class RunResult:
    code: int  # the program's exit code; 128+N when killed by signal N; 124 on timeout
    output: str = ""
    timed_out: bool = False
    runtime: str = ""
    version: str = ""
    argv: list[str] = field(default_factory=list)  # the runtime's command line
    spec: RunSpec | None = None


def spawn(
    spec: RunSpec,
    runtime: str | None = None,
    *,
    stdin: int | IO[bytes] | None = subprocess.DEVNULL,
    stdout: int | IO[bytes] | None = subprocess.PIPE,
    stderr: int | IO[bytes] | None = subprocess.STDOUT,
    process_group: int | None = None,
) -> tuple[subprocess.Popen[bytes], Launch]:
    """Start ``spec`` as a child process with the chosen runtime; the caller waits.
    ``process_group=0`` puts it in a process group of its own (signals only from its caller)."""
    launch = prepare(spec, runtime)
    try:
        proc = subprocess.Popen(
            launch.argv,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            pass_fds=tuple(launch.fds.values()),
            process_group=process_group,
        )
    finally:
        for fd in launch.fds.values():
            os.close(fd)
    return proc, launch


def stop(proc: subprocess.Popen[bytes], grace: float = 5.0, sig: int = signal.SIGTERM) -> int:
    """``sig`` (forwarded to the program, whose traps run), then SIGKILL after ``grace``."""
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def run_in_image(
    record: ImageRecord,
    argv: list[str],
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    binds: Iterable[Bind] = (),
    timeout: float | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    runtime: str | None = None,
    stdin: bytes | None = None,
    output: IO[bytes] | None = None,
    gpu: bool | None = None,
    writable: Iterable[str] = (),
    grace: float = 5.0,
) -> RunResult:
    """Run ``argv`` in ``record``'s image and wait for it (see the module's docstring)."""
    spec = build_runspec(
        record, argv, cwd=cwd, binds=binds, env=env, environ=environ, gpu=gpu, writable=writable
    )
    proc, launch = spawn(
        spec,
        runtime,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=output if output is not None else subprocess.PIPE,
    )
    timed_out = False
    try:
        out, _ = proc.communicate(stdin, timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        timed_out = True
        stop(proc, grace)
        out, _ = proc.communicate()
        code = 124
    text = (out or b"").decode(errors="replace")
    code = 128 - code if code < 0 else code
    return RunResult(
        code, text, timed_out, launch.runtime, launch.version, launch.runtime_argv, spec
    )
