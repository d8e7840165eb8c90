"""Shared printing helpers: human tables on a terminal, JSON for scripts.

On a terminal, tables fit its width (long cells fold onto more lines, never cut). When the output
is a pipe or a file there is no width to fit: every row is printed whole on one line, so ids and
paths can be copied, grepped and cut into columns (``neurodesk list | grep ...``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console, ConsoleDimensions
from rich.errors import MarkupError
from rich.markup import escape
from rich.table import Table

# Wider than any row we print: when not on a terminal, nothing is wrapped or cut to a width.
PIPE_WIDTH = 1_000_000


class _Console(Console):
    """A rich console for our output.

    It never fails on text that only looks like markup (an image called '[/]'), and it does not
    squeeze its output to 80 columns when it is not a terminal.
    """

    def print(self, *objects: Any, **kwargs: Any) -> None:
        try:
            super().print(*objects, **kwargs)
        except MarkupError:
            super().print(*objects, **{**kwargs, "markup": False})

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        # not even $COLUMNS (which shells export to their children) squeezes a pipe
        return size if self.is_terminal else ConsoleDimensions(PIPE_WIDTH, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


console = _Console(highlight=False)
err_console = _Console(stderr=True, highlight=False)

json_option_help = "print machine-readable JSON instead of a table"


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def on_terminal() -> bool:
    """Whether standard output is a terminal (where long texts may be shortened for a table)."""
    return console.is_terminal


def shorten(text: str, width: int = 60) -> str:
    """``text`` on one line; cut to ``width`` with an ellipsis only on a terminal."""
    text = " ".join(text.split())
    if not on_terminal() or len(text) <= width:
        return text
    return text[: width - 1] + "…"


def short_digest(digest: str) -> str:
    """``sha256:`` and 12 hex digits on a terminal (as ``docker images`` shows), whole otherwise."""
    return digest[:19] if on_terminal() else digest


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title, show_edge=False, header_style="bold")
    for column in columns:
        # fold: a cell too long for a terminal continues on the next line instead of being cut
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(escape(str(c)) for c in row))
    console.print(table)
