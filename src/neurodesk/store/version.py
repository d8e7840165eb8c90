"""Ordering of tool versions as people expect (1.10 after 1.9, 3.0.4 after 3.0)."""

from __future__ import annotations

import re

_CHUNK = re.compile(r"(\d+)|(\D+)")


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key: numeric chunks compare as numbers, text chunks as text, numbers first."""
    return tuple(
        (0, int(number)) if number else (1, text) for number, text in _CHUNK.findall(version)
    )
