"""The Jinja context a recipe's strings are rendered with (strict: unknown names are errors)."""

from __future__ import annotations

import os
from typing import Any

import jinja2

from neurodesk.errors import ValidationError
from neurodesk.recipe.model import Recipe

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)

_ARCH_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}


def host_arch() -> str:
    machine = os.uname().machine
    return _ARCH_ALIASES.get(machine, machine)


class RenderContext:
    """Values visible to a recipe's Jinja expressions."""

    def __init__(self, recipe: Recipe, arch: str | None = None) -> None:
        self.recipe = recipe
        self.arch = arch or host_arch()
        self.local: dict[str, Any] = {}

    def variables(self) -> dict[str, Any]:
        return {
            "context": {"name": self.recipe.name, "version": self.recipe.version, "options": {}},
            "arch": self.arch,
            "parallel_jobs": os.cpu_count() or 1,
            "local": self.local,
        }

    def render(self, text: str, where: str) -> str:
        """Render one string of the recipe; ``where`` names its key path for errors."""
        if "{" not in text:
            return text
        try:
            return _ENV.from_string(text).render(self.variables())
        except jinja2.TemplateError as exc:
            line = f"{where}: {exc.message or type(exc).__name__}"
            raise ValidationError(line, [line], hint="fix the Jinja expression") from None
