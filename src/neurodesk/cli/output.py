"""Shared printing helpers: human tables on a terminal, JSON for scripts.

On a terminal, tables fit its width (long cells fold onto more lines, never cut). When the output
is a pipe or a file there is no width to fit: every row is printed whole on one line, so ids and
paths can be copied, grepped and cut into columns (``neurodesk list | grep ...``).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

# Wider than any row we print: when not on a terminal, nothing is wrapped or cut to a width.
PIPE_WIDTH = 1_000_000


def _console_class() -> type[Console]:
    from rich.console import Console, ConsoleDimensions
    from rich.errors import MarkupError

    class _Console(Console):
        """A rich console for our output.

        It never fails on text that only looks like markup (an image called '[/]'), and it does
        not squeeze its output to 80 columns when it is not a terminal.
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

    return _Console


class _LazyConsole:
    """Stands in for a rich console until it is first used: importing rich costs ~20 ms, which
    'neurodesk search' piped into a script and '--json' output do not need (issue 16)."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._real: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._real is None:
            self._real = _console_class()(**self._options)
        return getattr(self._real, name)


console = cast("Console", _LazyConsole(highlight=False))
err_console = cast("Console", _LazyConsole(stderr=True, highlight=False))

json_option_help = "print machine-readable JSON instead of a table"


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _plain_stdout() -> bool:
    """True when standard output is surely no terminal in rich's eyes (a pipe or a file, and
    neither FORCE_COLOR nor TTY_COMPATIBLE set), known without importing rich."""
    if "FORCE_COLOR" in os.environ or "TTY_COMPATIBLE" in os.environ:
        return False
    try:
        return not sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


# What rich reads as an emoji code (':smile:'); text without one is printed by rich as it is.
_EMOJI_CODE = re.compile(r":\S*?:")


def print_text(text: str = "", *, markup: bool = False, style: str | None = None) -> None:
    """``console.print(text, soft_wrap=True, ...)``; to a pipe, text that rich would print as it
    is (printable lines, no emoji codes, no markup) is written without importing rich."""
    if (
        _plain_stdout()
        and all(line.isprintable() for line in text.split("\n"))
        and not _EMOJI_CODE.search(text)
        and not (markup and "[" in text)
    ):
        sys.stdout.write(text + "\n")
        return
    console.print(text, soft_wrap=True, markup=markup, style=style)


def on_terminal() -> bool:
    """Whether standard output is a terminal (where long texts may be shortened for a table)."""
    return False if _plain_stdout() else console.is_terminal


def shorten(text: str, width: int = 60) -> str:
    """``text`` on one line; cut to ``width`` with an ellipsis only on a terminal."""
    text = " ".join(text.split())
    if len(text) <= width or not on_terminal():
        return text
    return text[: width - 1] + "…"


def short_digest(digest: str) -> str:
    """``sha256:`` and 12 hex digits on a terminal (as ``docker images`` shows), whole otherwise."""
    return digest[:19] if on_terminal() else digest


def plain_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str | None:
    """The table exactly as rich prints it to a pipe, made without rich (a few ms instead of
    ~100 ms for a few hundred rows); None when a cell is not plain printable ASCII (its width
    on screen is rich's to measure), holds a backslash, or the table is not what this renders."""
    cells = [list(columns), *(list(row) for row in rows)]
    if any(len(row) != len(columns) for row in cells) or any("[" in c for c in columns):
        return None  # rows of another length, or headers that rich reads as markup
    for row in cells:
        for cell in row:
            # rich's escaping shows a backslash before markup differently: its call
            if not (cell.isascii() and cell.isprintable()) or "\\" in cell:
                return None
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]

    def line(row: list[str], bar: str) -> str:
        return " " + f" {bar} ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " "

    rule = "\u2547".join("\u2501" * (w + 2) for w in widths)
    out = [line(cells[0], "\u2503"), rule, *(line(row, "\u2502") for row in cells[1:])]
    return "\n".join(out) + "\n"


def rich_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, show_edge=False, header_style="bold")
    for column in columns:
        # fold: a cell too long for a terminal continues on the next line instead of being cut
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(escape(c) for c in row))
    return table


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    texts = [[str(c) for c in row] for row in rows]
    if title is None and _plain_stdout():
        plain = plain_table(columns, texts)
        if plain is not None:
            sys.stdout.write(plain)
            return
    console.print(rich_table(title, columns, texts))
