"""The README's shell examples against the real CLI.

Every ``neurodesk``/``nd`` command line in the README's shell code blocks must name commands and
options that exist, with no extra arguments, as click parses it (nothing is run for that). Lines
that only read (``--help`` of each command, and read-only catalog and recipe commands) are run,
offline, in an empty home. The test checks structure, not the README's text, so it keeps
working as sections are added.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from neurodesk.cli.main import cli
from tests.conftest import REPO, assert_one_line_error, run_cli

README = REPO / "README.md"
SHELL_LANGUAGES = {"sh", "bash", "shell", "console"}
PROGRAMS = {"neurodesk", "nd"}
# Command paths that only read the recipes or the (empty) store: run as written.
READ_ONLY = {("recipe", "check"), ("recipe", "render"), ("recipe", "list"), ("list",), ("info",)}
# Parameter types whose values depend on the reader's machine (a path that exists there).
MACHINE_DEPENDENT = (click.Path, click.File)


@dataclass(frozen=True)
class Example:
    line: int
    argv: list[str]

    def __str__(self) -> str:
        return f"README.md:{self.line}: {shlex.join(self.argv)}"


def _blocks(text: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, lines) of each fenced code block in a shell language."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = re.match(r"^\s*(```+|~~~+)\s*([\w-]*)", lines[index])
        if not opening:
            index += 1
            continue
        fence, language = opening.group(1), opening.group(2).lower()
        start = index + 1
        index = start
        while index < len(lines) and not lines[index].strip().startswith(fence):
            index += 1
        if language in SHELL_LANGUAGES:
            yield start + 1, lines[start:index]
        index += 1


def _commands(words: list[str]) -> Iterator[list[str]]:
    """Simple commands of a shell line: split at ;, &&, ||, |; environment assignments dropped."""
    current: list[str] = []
    for word in [*words, ";"]:
        if word in (";", "&&", "||", "|", "&"):
            while current and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", current[0]):
                current.pop(0)
            if current:
                yield current
            current = []
        else:
            current.append(word)


def readme_examples() -> list[Example]:
    examples = []
    for first, lines in _blocks(README.read_text(encoding="utf-8")):
        joined: list[tuple[int, str]] = []
        for offset, raw in enumerate(lines):
            if joined and joined[-1][1].endswith("\\"):
                joined[-1] = (joined[-1][0], joined[-1][1][:-1] + " " + raw)
            else:
                joined.append((first + offset, raw))
        for number, text in joined:
            text = text.strip().removeprefix("$ ")
            lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
            lexer.whitespace_split = True
            lexer.commenters = "#"
            try:
                words = list(lexer)
            except ValueError:
                continue  # not a shell line (output shown in a shell block)
            for command in _commands(words):
                if command[0] in PROGRAMS:
                    examples.append(Example(number, command[1:]))
    return examples


EXAMPLES = readme_examples()


def test_the_readme_has_examples() -> None:
    assert len(EXAMPLES) >= 10, EXAMPLES


def _parse(argv: list[str]) -> tuple[list[str], click.Context]:
    """Parse like the real CLI without running anything; returns the command path and context."""
    ctx = cli.make_context("neurodesk", list(argv))
    path: list[str] = []
    command: click.Command = cli
    while isinstance(command, click.Group):
        words = [*ctx._protected_args, *ctx.args]
        if not words:
            break
        name, found, rest = command.resolve_command(ctx, words)
        assert found is not None and name is not None
        if isinstance(found, click.Group) and not rest and not found.invoke_without_command:
            path.append(name)
            command = found
            break
        path.append(name)
        ctx = found.make_context(name, rest, parent=ctx)
        command = found
    return path, ctx


@pytest.mark.parametrize("example", EXAMPLES, ids=str)
def test_readme_command_parses(example: Example, tmp_path: Path) -> None:
    try:
        _parse(example.argv)
    except click.BadParameter as exc:
        # A path that must exist on the reader's machine is fine; a bad choice or number is not.
        if exc.param is None or not isinstance(exc.param.type, MACHINE_DEPENDENT):
            pytest.fail(f"{example}: {exc.format_message()}")
    except click.UsageError as exc:
        pytest.fail(f"{example}: {exc.format_message()}")


def _command_paths() -> list[list[str]]:
    paths = []
    for example in EXAMPLES:
        try:
            path, _ = _parse(example.argv)
        except click.ClickException:
            continue  # reported by test_readme_command_parses
        if path not in paths:
            paths.append(path)
    return paths


@pytest.mark.parametrize("path", _command_paths(), ids=" ".join)
def test_help_of_every_readme_command_runs(path: list[str], home: Path) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"], env={"NEURODESK_HOME": str(home)})
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def _read_only(example: Example) -> bool:
    return any(tuple(example.argv[: len(path)]) == path for path in READ_ONLY)


@pytest.mark.parametrize("example", [e for e in EXAMPLES if _read_only(e)], ids=str)
def test_read_only_readme_commands_run_offline(example: Example, home: Path) -> None:
    """They run as written; a name that is only a placeholder gets the one-line error."""
    proc = run_cli(example.argv, home)
    if proc.returncode != 0:
        assert_one_line_error(proc)
        assert proc.returncode == 2, f"{example}: {proc.stderr}"  # not found: a placeholder
