"""Golden outputs: every shipped recipe renders to exactly the files under tests/unit/golden/.

A change in rendering shows up here as a diff to review. To accept it deliberately:

    NEURODESK_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_recipe_golden.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from neurodesk.recipe import load_recipe
from neurodesk.recipe.context import RenderContext
from neurodesk.recipe.load import shipped_recipes
from neurodesk.recipe.render_apptainer import render_apptainer
from neurodesk.recipe.render_docker import render_dockerfile

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("NEURODESK_UPDATE_GOLDEN") == "1"
RENDERERS = {"Dockerfile": render_dockerfile, "def": render_apptainer}
RECIPES = shipped_recipes()


def _render(path: Path, suffix: str) -> str:
    recipe = load_recipe(path)
    # fixed machine facts, so the files are the same on every machine
    return RENDERERS[suffix](recipe, RenderContext(recipe, arch="x86_64", parallel_jobs=2))


def test_there_are_recipes_to_compare() -> None:
    assert len(RECIPES) >= 15


@pytest.mark.parametrize("suffix", sorted(RENDERERS))
@pytest.mark.parametrize("path", RECIPES, ids=[p.parent.name for p in RECIPES])
def test_rendering_matches_golden_file(path: Path, suffix: str) -> None:
    golden = GOLDEN / f"{path.parent.name}.{suffix}"
    text = _render(path, suffix)
    assert text == _render(path, suffix), "rendering is not deterministic"
    if UPDATE:
        golden.write_text(text)
    assert golden.is_file(), f"no golden file {golden}; run with NEURODESK_UPDATE_GOLDEN=1"
    assert text == golden.read_text(), (
        f"{path} renders differently from {golden}; review the diff, then regenerate with "
        "NEURODESK_UPDATE_GOLDEN=1"
    )


def test_no_stale_golden_files() -> None:
    names = {p.parent.name for p in RECIPES}
    stale = sorted(g.name for g in GOLDEN.iterdir() if g.name.rsplit(".", 1)[0] not in names)
    assert not stale, f"golden files without a recipe: {stale}"
