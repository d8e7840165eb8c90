"""Byte progress for transfers: one rich bar per blob, safe to update from worker threads."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Protocol

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


class TransferProgress(Protocol):
    def add(self, key: str, description: str, total: int | None) -> None: ...

    def advance(self, key: str, amount: int) -> None: ...


class NullProgress:
    def add(self, key: str, description: str, total: int | None) -> None:
        pass

    def advance(self, key: str, amount: int) -> None:
        pass


class RichProgress:
    """A live multi-bar display on stderr (plain, final lines only when not a terminal)."""

    def __init__(self) -> None:
        self.console = Console(stderr=True, highlight=False)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.console.is_terminal,
        )
        self.tasks: dict[str, TaskID] = {}
        self.lock = threading.Lock()

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def add(self, key: str, description: str, total: int | None) -> None:
        with self.lock:
            self.tasks[key] = self.progress.add_task(escape(description), total=total)

    def advance(self, key: str, amount: int) -> None:
        with self.lock:
            task = self.tasks.get(key)
        if task is not None:
            self.progress.advance(task, amount)
