"""The Jinja environment for install templates, with one quoting filter per target language.

Templates live as files in ``install/templates``; every value that reaches a script or a module
file passes through the filter of that file's language, never through string pasting.
"""

from __future__ import annotations

import shlex
from typing import Any

import jinja2


def lua_string(text: str) -> str:
    """A Lua double-quoted string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    escaped = escaped.replace("\r", "\\r")  # a bare carriage return ends a Lua string too
    return f'"{escaped}"'


def lua_long_string(text: str) -> str:
    """A Lua long string ``[==[...]==]`` whose level no ``]==]`` inside the text can close."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    # A newline right after the opening bracket is dropped by Lua, so text keeps its first line.
    return f"[{eq}[\n{text}]{eq}]"


def tcl_string(text: str) -> str:
    """A Tcl double-quoted word: no substitution of ``$``, ``[...]`` or backslashes survives,
    and braces are escaped too, so the word cannot close a braced body it sits in (a proc)."""
    out = text
    for char in ("\\", '"', "$", "[", "]", "{", "}"):
        out = out.replace(char, "\\" + char)
    return f'"{out}"'


_DESKTOP_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")


def desktop_string(text: str) -> str:
    """A value of type string/localestring in a desktop entry (one line, escapes per the spec)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def desktop_exec(argv: list[str]) -> str:
    """An ``Exec=`` value: each argument quoted per the desktop entry spec, ``%`` doubled."""
    words = []
    for arg in argv:
        arg = arg.replace("%", "%%")
        if any(c in _DESKTOP_RESERVED for c in arg):
            for char in ("\\", '"', "`", "$"):
                arg = arg.replace(char, "\\" + char)
            arg = f'"{arg}"'
        words.append(arg)
    # The Exec value is itself a string value, whose backslashes are escaped once more.
    return desktop_string(" ".join(words))


def xml_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("neurodesk.install", "templates"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
    trim_blocks=True,
    lstrip_blocks=True,
    # Shell uses ``${#array[@]}``: Jinja comments get a spelling no target language has.
    comment_start_string="<%#",
    comment_end_string="#%>",
)
_ENV.filters.update(
    sh=shlex.quote,
    lua=lua_string,
    lua_long=lua_long_string,
    tcl=tcl_string,
    desktop=desktop_string,
    desktop_exec=desktop_exec,
    xml=xml_text,
)


def render(template: str, **context: Any) -> str:
    return _ENV.get_template(template).render(**context)
