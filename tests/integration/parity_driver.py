"""Runs a command in an image as a SLURM array task runs a batch task, for the signal tests.

``python -m tests.integration.parity_driver batch IMAGE ARGV...``: the RunSpec is built from
this process's environment and working directory and run with ``jobs.task.execute`` (what
``python -m neurodesk.jobs run-task`` runs), SIGTERM and SIGINT turned into a stop that
reaches the program, as ``scancel`` or a time limit sends them. (The parity matrix itself runs
``neurodesk batch run`` and ``neurodesk test``.) ``recipe`` runs it with
``runtime.execute.run_in_image`` instead. Output goes to stdout; the exit status is the
program's, or the signal that killed it.
"""

from __future__ import annotations

import os
import signal
import sys

from neurodesk.paths import Paths
from neurodesk.store import Store


def main() -> int:
    route, image, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
    record = Store(Paths.from_env().store).resolve(image)
    if route == "batch":
        from neurodesk.jobs.task import execute, raise_on_signals
        from neurodesk.runtime.spec import build_runspec

        raise_on_signals()
        spec = build_runspec(record, argv)
        code, _interrupted, _info = execute(spec, sys.stdout.buffer)
    else:
        from neurodesk.runtime.execute import run_in_image

        result = run_in_image(record, argv, timeout=120)
        sys.stdout.write(result.output)
        code = result.code
    sys.stdout.flush()
    if code > 128 and code - 128 in {s.value for s in signal.Signals}:
        signal.signal(code - 128, signal.SIG_DFL)
        os.kill(os.getpid(), code - 128)
    return code


if __name__ == "__main__":
    sys.exit(main())
