"""``python -m neurodesk.jobs run-task BATCH_DIR INDEX``: what each SLURM array task executes.

Same as ``neurodesk batch run-task`` but imports only the jobs layer. A task with a plan
(written at submission, see :mod:`neurodesk.jobs.plan`) runs on the hot path without pydantic
or the store; arrays with plans run ``jobs/hotpath.py`` directly and skip even this module.
"""

from __future__ import annotations

import sys
from pathlib import Path

from neurodesk.errors import NeurodeskError
from neurodesk.jobs.hotpath import run_task


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] != "run-task" or not argv[2].isdigit():
        print("usage: python -m neurodesk.jobs run-task BATCH_DIR INDEX", file=sys.stderr)
        return 2
    planned = run_task(argv[1], int(argv[2]), say=False)  # the hot path said why
    if planned is not None:
        return planned
    from neurodesk.jobs.task import run_one

    try:
        return run_one(Path(argv[1]), int(argv[2]))
    except NeurodeskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
