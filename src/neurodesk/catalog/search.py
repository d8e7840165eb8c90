"""Searching the catalog: rank by where the term matches (name first, then tags, then text)."""

from __future__ import annotations

from dataclasses import dataclass

from neurodesk.catalog.collect import Tool

# Higher is better; a tool is ranked by its best match.
NAME_EXACT, NAME_PREFIX, NAME_PART, COMMAND, CATEGORY, DESCRIPTION, README = 7, 6, 5, 4, 3, 2, 1


@dataclass(frozen=True)
class Hit:
    tool: Tool
    score: int
    reason: str


def score(tool: Tool, term: str) -> Hit | None:
    needle = term.lower()
    name = tool.name.lower()
    checks = [
        (NAME_EXACT, "name", name == needle),
        (NAME_PREFIX, "name", name.startswith(needle)),
        (NAME_PART, "name", needle in name),
        (COMMAND, "command", any(needle in c.lower() for c in tool.commands)),
        (CATEGORY, "category", any(needle in c.lower() for c in tool.categories)),
        (DESCRIPTION, "description", needle in tool.description.lower()),
        (README, "readme", needle in tool.readme.lower()),
    ]
    for value, reason, ok in checks:
        if ok:
            return Hit(tool, value, reason)
    return None


def search(tools: dict[str, Tool], term: str) -> list[Hit]:
    hits = [h for h in (score(t, term) for t in tools.values()) if h is not None]
    return sorted(hits, key=lambda h: (-h.score, h.tool.name))
