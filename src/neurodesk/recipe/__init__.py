"""Recipes (neurocontainers ``build.yaml``): load, validate, render to build files.

Modules, in data-flow order: ``model`` (top-level keys), ``directives`` (static checks of
``build.directives``), ``load`` (find + parse + validate), ``context`` (the Jinja context),
``templates`` (neurodocker's install templates), ``plan`` (directives -> build steps),
``render_docker`` / ``render_apptainer``, ``context_dir`` (files the build context needs),
``tests`` (``test.yaml``), ``scaffold`` (``recipe new``).
"""

from neurodesk.recipe.load import find_recipe, load_recipe
from neurodesk.recipe.model import Recipe

__all__ = ["Recipe", "find_recipe", "load_recipe"]
