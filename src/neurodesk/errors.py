"""The one exception type users see, as a single line: what is wrong and how to fix it."""

from __future__ import annotations


class NeurodeskError(Exception):
    """An error caused by input or environment, reported to the user without a traceback.

    ``hint`` tells the user how to fix it; the CLI prints ``error: <message> (<hint>)``.
    """

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class NotFoundError(NeurodeskError):
    """A named tool, image, version or file does not exist."""

    exit_code = 2


class MissingToolError(NeurodeskError):
    """A system program we need (bwrap, buildah, debootstrap, ...) is not installed."""

    exit_code = 3


class ValidationError(NeurodeskError):
    """Input (a recipe, a config file) is malformed; ``problems`` holds one line per problem."""

    exit_code = 4

    def __init__(self, message: str, problems: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.problems = problems


class ExternalCommandError(NeurodeskError):
    """A program we ran failed; ``log_tail`` holds its last lines for the report."""

    exit_code = 5

    def __init__(self, message: str, log_tail: list[str] | None = None, hint: str | None = None):
        super().__init__(message, hint)
        self.log_tail = log_tail or []
