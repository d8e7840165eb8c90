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


def _terminal() -> bool:
    """Whether rich would treat standard output as a terminal (its rules, without importing
    rich): TTY_COMPATIBLE=0/1 decides, then FORCE_COLOR (set and not empty), then isatty."""
    tty = os.environ.get("TTY_COMPATIBLE", "")
    if tty in ("0", "1"):
        return tty == "1"
    force = os.environ.get("FORCE_COLOR")
    if force is not None:
        return force != ""
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def _plain_stdout() -> bool:
    """True when standard output is no terminal in rich's eyes (a pipe or a file)."""
    return not _terminal()


_BOLD, _RESET = "\x1b[1m", "\x1b[0m"  # what rich writes around bold text on a terminal

# What rich reads as an emoji code (':smile:'); text without one is printed by rich as it is.
_EMOJI_CODE = re.compile(r":\S*?:")


def _styles() -> bool:
    """Whether rich would style a terminal's output (not when TERM says it cannot)."""
    return os.environ.get("TERM", "").strip().lower() not in ("dumb", "unknown")


def print_text(text: str = "", *, markup: bool = False, style: str | None = None) -> None:
    """``console.print(text, soft_wrap=True, ...)``; text that rich would print as it is
    (printable lines, no emoji codes, no markup; bold or no style) is written without rich."""
    if (
        all(line.isprintable() for line in text.split("\n"))
        and not _EMOJI_CODE.search(text)
        and not (markup and "[" in text)
        and style in (None, "bold")
    ):
        if style and text and _terminal() and _styles():
            if "\n" not in text:
                sys.stdout.write(f"{_BOLD}{text}{_RESET}\n")
                return
        else:
            sys.stdout.write(text + "\n")
            return
    console.print(text, soft_wrap=True, markup=markup, style=style)


def on_terminal() -> bool:
    """Whether standard output is a terminal (where long texts may be shortened for a table)."""
    return _terminal()


def shorten(text: str, width: int = 60) -> str:
    """``text`` on one line; cut to ``width`` with an ellipsis only on a terminal."""
    text = " ".join(text.split())
    if len(text) <= width or not on_terminal():
        return text
    return text[: width - 1] + "…"


def short_digest(digest: str) -> str:
    """``sha256:`` and 12 hex digits on a terminal (as ``docker images`` shows), whole otherwise."""
    return digest[:19] if on_terminal() else digest


def _simple(columns: Sequence[str], cells: list[list[str]]) -> bool:
    """Cells whose width is their length (printable ASCII and shorten()'s ellipsis) and that
    rich prints as they are (no backslash; no markup in the headers, which are not escaped)."""
    if any(len(row) != len(columns) for row in cells) or any("[" in c for c in columns):
        return False
    for row in cells:
        for cell in row:
            text = cell.replace("…", ".")
            if not (text.isascii() and text.isprintable()) or "\\" in text:
                return False
    return True


def _render(cells: list[list[list[str]]], widths: list[int], bold: bool) -> str:
    """Rows of wrapped cells (a list of lines each) in rich's table style, without edges."""
    out = []
    for number, row in enumerate(cells):
        bar = "\u2503" if number == 0 else "\u2502"
        for index in range(max(len(lines) for lines in row)):
            parts = [
                (lines[index] if index < len(lines) else "").ljust(width)
                for lines, width in zip(row, widths, strict=True)
            ]
            if number == 0 and bold:  # the header in bold, the bars not (as rich does)
                separator = f" {_RESET}{bar}{_BOLD} "
                out.append(f"{_BOLD} {separator.join(parts)} {_RESET}")
            else:
                out.append(" " + f" {bar} ".join(parts) + " ")
        if number == 0:
            out.append("\u2547".join("\u2501" * (w + 2) for w in widths))
    return "\n".join(out) + "\n"


def plain_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str | None:
    """The table exactly as rich prints it to a pipe, made without rich (a few ms instead of
    ~100 ms for a few hundred rows); None when a cell is not plain printable ASCII (its width
    on screen is rich's to measure), holds a backslash, or the table is not what this renders."""
    cells = [list(columns), *(list(row) for row in rows)]
    if not _simple(columns, cells) or any("…" in c for row in cells for c in row):
        return None
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return _render([[[c] for c in row] for row in cells], widths, bold=False)


def _fit_widths(natural: list[int], available: int) -> list[int]:
    """Column widths that fit ``available`` cells: the widest columns are narrowed first, to
    one common width (as little as needed), never below one cell."""
    if sum(natural) <= available:
        return natural
    low, high = 1, max(natural)
    while low < high:  # the largest cap whose capped widths still fit
        middle = (low + high + 1) // 2
        if sum(min(w, middle) for w in natural) <= available:
            low = middle
        else:
            high = middle - 1
    widths = [min(w, low) for w in natural]
    spare = available - sum(widths)
    for index, width in enumerate(natural):  # what is left goes to the capped columns
        if spare > 0 and width > widths[index]:
            widths[index] += 1
            spare -= 1
    return widths


def _fold(text: str, width: int) -> list[str]:
    import textwrap

    if len(text) <= width:
        return [text]
    return textwrap.wrap(text, width, break_on_hyphens=False) or [""]


def terminal_table(
    columns: Sequence[str], rows: Sequence[Sequence[str]], width: int, bold: bool = True
) -> str | None:
    """The table for a terminal ``width`` columns wide, in rich's style, without rich (which
    takes ~0.3 s for a few hundred rows): long cells fold onto more lines at spaces (words
    longer than their column are split), nothing is cut. None when a cell is not simple."""
    cells = [list(columns), *(list(row) for row in rows)]
    if not _simple(columns, cells):
        return None
    natural = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    widths = _fit_widths(natural, width - 3 * len(columns) + 1)
    folded = [[_fold(c, w) for c, w in zip(row, widths, strict=True)] for row in cells]
    return _render(folded, widths, bold)


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
    if title is None:
        if _terminal():
            import shutil

            width = shutil.get_terminal_size().columns
            fast = terminal_table(columns, texts, width, _styles())
        else:
            fast = plain_table(columns, texts)
        if fast is not None:
            sys.stdout.write(fast)
            return
    console.print(rich_table(title, columns, texts))
