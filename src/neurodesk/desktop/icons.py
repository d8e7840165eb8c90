"""A tool's icon: a badge with its initials in a colour of its own, drawn as SVG.

Images ship no icon we could trust (an SVG can carry script), so every tool gets one made here
from its validated name: the same name always gives the same badge, in kernelspecs (the
launcher's cards) and in the tools panel.
"""

from __future__ import annotations

import hashlib
import re
from xml.sax.saxutils import escape

# Dark enough for white letters (WCAG contrast >= 4.5).
PALETTE = ("#1f5f8b", "#7b3f99", "#2e7d32", "#b23c17", "#00695c", "#5d4037", "#283593", "#ad1457")


def initials(name: str) -> str:
    """Up to three letters: the first of each word (``mrtrix3`` → ``MR``, ``dcm2niix`` → ``DC``)."""
    words = [w for w in re.split(r"[^A-Za-z0-9]+", name) if w]
    if len(words) >= 2:
        letters = "".join(w[0] for w in words[:3])
    else:
        letters = (words[0] if words else "?")[:2]
    return letters.upper()


def colour(name: str) -> str:
    return PALETTE[hashlib.sha256(name.encode()).digest()[0] % len(PALETTE)]


def tool_svg(name: str, size: int = 64) -> str:
    text = escape(initials(name))
    font = 28 if len(text) < 3 else 21
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
        'viewBox="0 0 64 64">'
        f'<rect x="2" y="2" width="60" height="60" rx="12" fill="{colour(name)}"/>'
        f'<text x="32" y="{32 + font // 3}" font-family="sans-serif" font-size="{font}" '
        f'font-weight="bold" fill="#ffffff" text-anchor="middle">{text}</text></svg>\n'
    )
