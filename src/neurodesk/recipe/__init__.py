"""Recipes (neurocontainers ``build.yaml``): load, validate, render to build files.

Modules, in data-flow order: ``model`` (top-level keys), ``directives`` (static checks of
``build.directives``), ``load`` (find + parse + validate), ``context`` (the Jinja context),
``templates`` (neurodocker's install templates), ``plan`` (directives -> build steps),
``render_docker`` / ``render_apptainer``, ``context_dir`` (files the build context needs),
``tests`` (``test.yaml``), ``scaffold`` (``recipe new``).

The names below are imported on first use: importing a light submodule does not load the
pydantic models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from neurodesk.recipe.load import find_recipe, load_recipe
    from neurodesk.recipe.model import Recipe

__all__ = ["Recipe", "find_recipe", "load_recipe"]

_WHERE = {"Recipe": "model", "find_recipe": "load", "load_recipe": "load"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"neurodesk.recipe.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
