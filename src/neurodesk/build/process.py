"""Running a long external command with its output streamed to a log and to a progress hook."""

from __future__ import annotations

import os
import subprocess
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from neurodesk.errors import ExternalCommandError

LineHook = Callable[[str], None]


def run_logged(
    argv: Sequence[str],
    log: Path,
    on_line: LineHook | None = None,
    what: str | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run ``argv``, appending its output to ``log``; on failure raise with the last 20 lines."""
    log.parent.mkdir(parents=True, exist_ok=True)
    tail: deque[str] = deque(maxlen=20)
    with log.open("a", encoding="utf-8") as sink:
        sink.write(f"$ {' '.join(argv)}\n")
        sink.flush()
        proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            cwd=cwd,
            env=None if env is None else {**os.environ, **env},
        )
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            sink.write(raw)
            tail.append(line)
            if on_line:
                on_line(line)
        code = proc.wait()
    if code != 0:
        raise ExternalCommandError(
            f"{what or argv[0]} failed with exit code {code}",
            log_tail=list(tail),
            hint=f"full log: {log}",
        )
