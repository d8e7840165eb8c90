"""Progress on the terminal: numbered phases with timings and a live status line."""

from __future__ import annotations

import time
from types import TracebackType

from rich.status import Status

from neurodesk.cli.output import err_console


class PhaseReporter:
    """Prints ``[n/N] title ... done (1.2 s)``; shows live detail in a spinner on a terminal."""

    def __init__(self, total: int = 0) -> None:
        self.total = total
        self.count = 0
        self.title = ""
        self.started = 0.0
        self.status: Status | None = None

    def __enter__(self) -> PhaseReporter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop_status()  # the error itself is reported once, by the CLI entry point

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self.started:.1f} s"

    def _stop_status(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None

    def step(self, title: str) -> None:
        self._stop_status()
        self.count += 1
        self.title = title
        self.started = time.monotonic()
        counter = f"[{self.count}/{self.total}] " if self.total else ""
        err_console.print(f"[bold]{counter}{title}[/]")
        if err_console.is_terminal:
            self.status = err_console.status(title)
            self.status.start()

    def update(self, text: str) -> None:
        if self.status is not None:
            self.status.update(f"{self.title}: {text}")
        else:
            err_console.print(f"    {text}", markup=False, soft_wrap=True)

    def done(self, detail: str = "") -> None:
        self._stop_status()
        suffix = f" — {detail}" if detail else ""
        err_console.print(f"    [green]✓[/] done in {self._elapsed()}{suffix}", soft_wrap=True)
        self.title = ""
