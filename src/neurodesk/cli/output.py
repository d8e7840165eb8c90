"""Shared printing helpers: human tables on a terminal, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.errors import MarkupError
from rich.markup import escape
from rich.table import Table


class _Console(Console):
    """A Console that never fails on text that only looks like markup (an image called '[/]')."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        try:
            super().print(*objects, **kwargs)
        except MarkupError:
            super().print(*objects, **{**kwargs, "markup": False})


console = _Console(highlight=False)
err_console = _Console(stderr=True, highlight=False)

json_option_help = "print machine-readable JSON instead of a table"


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title, show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(escape(str(c)) for c in row))
    console.print(table)
