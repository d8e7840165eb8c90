"""The runtime interface: the only way into a container.

A runtime has a name, a program, a version and turns a RunSpec into a command line; ``start``
runs it as a child process. Every caller (``neurodesk exec``/``shell``, batch tasks, recipe
tests, desktop kernels and GUI apps) goes through :func:`neurodesk.runtime.launch.prepare` or
:func:`neurodesk.runtime.execute.run_in_image`, which choose one of these. A new runtime is
one new file with a subclass plus one line in ``launch.BACKENDS``.
"""

from __future__ import annotations

import functools
import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from neurodesk.runtime.spec import RunSpec


@dataclass
class Launch:
    """A command line ready to run: the runtime that made it, and fds it must inherit."""

    runtime: str
    version: str
    argv: list[str]
    fds: dict[str, int] = field(default_factory=dict)


class Runtime(ABC):
    name: str = ""
    # Whether the runtime passes signals to the program itself (else we add the forwarder).
    forwards_signals: bool = True

    def __init__(self, program: str) -> None:
        self.program = program

    def version(self) -> str:
        return _version(self.program)

    @abstractmethod
    def argv(self, spec: RunSpec, fds: dict[str, int] | None = None) -> list[str]:
        """The command line that runs ``spec``."""

    def launch(self, spec: RunSpec, interactive: bool = False) -> Launch:
        """The command line plus what it needs (made-up files, the signal forwarder)."""
        return Launch(self.name, self.version(), self.argv(spec))


@functools.cache
def _version(program: str) -> str:
    """``PROGRAM --version`` → its last word ("bubblewrap 0.8.0" → "0.8.0"); asked once."""
    try:
        out = subprocess.run(
            [program, "--version"], capture_output=True, text=True, timeout=20, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    words = out.split()
    return words[-1] if words else "unknown"
