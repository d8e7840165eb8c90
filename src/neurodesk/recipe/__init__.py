"""Recipes (neurocontainers ``build.yaml``): load, validate, render to build files."""

from neurodesk.recipe.load import find_recipe, load_recipe
from neurodesk.recipe.model import Recipe

__all__ = ["Recipe", "find_recipe", "load_recipe"]
