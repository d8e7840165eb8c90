"""Shell text shared by the renderers: command joining and quoting."""

from __future__ import annotations


def join_commands(commands: list[str]) -> list[str]:
    """Lines of one shell command list that works both in a Dockerfile ``RUN`` and in a script.

    A Dockerfile instruction is one logical line, so the commands (and the lines of multi-line
    commands, as in neurodocker's templates) are chained with ``&&`` and continued with ``\\``;
    a line that already ends in ``\\`` (or in ``&&``, ``||``, ``|``) continues as written. Blank
    lines and comment lines are dropped: a comment inside a continued line would end it.
    """
    lines: list[str] = []
    for command in commands:
        for raw in command.splitlines():
            line = raw.rstrip()
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if not lines:
                lines.append(line.strip())
            elif lines[-1].endswith("\\"):
                lines.append("    " + line.strip())
            elif lines[-1].endswith(("&&", "||", "|")):
                lines[-1] += " \\"
                lines.append("    " + line.strip())
            else:
                lines[-1] += " \\"
                lines.append(" && " + line.strip())
    while lines and lines[-1].endswith("\\"):
        lines[-1] = lines[-1][:-1].rstrip()
    return lines


def double_quote(value: str) -> str:
    """``"value"`` with ``\\``, ``"`` and backquotes escaped; ``$VAR`` still expands."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`")
    return f'"{escaped}"'
