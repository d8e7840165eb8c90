"""How long-running library work reports progress, without knowing who is listening."""

from __future__ import annotations

from typing import Protocol


class Reporter(Protocol):
    def step(self, title: str) -> None:
        """A new phase begins (e.g. 'Building dcm2niix')."""

    def update(self, text: str) -> None:
        """Live detail within the current phase (a build step, a file name)."""

    def done(self, detail: str = "") -> None:
        """The current phase finished."""


class NullReporter:
    def step(self, title: str) -> None:
        pass

    def update(self, text: str) -> None:
        pass

    def done(self, detail: str = "") -> None:
        pass
