"""Which recipe directive each Dockerfile instruction came from, for progress and errors.

The renderer (``neurodesk.recipe``) owns how a directive becomes instructions; rather than
duplicating that knowledge we ask it: rendering the recipe with one directive at a time tells
how many instructions that directive yields. When a directive cannot be rendered on its own
(it refers to variables set by another), the map stops there and later steps are unnamed.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from neurodesk.errors import NeurodeskError
from neurodesk.recipe import Recipe
from neurodesk.recipe.context import RenderContext
from neurodesk.recipe.render_docker import render_dockerfile

_INSTRUCTION = re.compile(r"^[A-Z]+\b")


def instructions(dockerfile: str) -> list[str]:
    """The instructions of a Dockerfile, continuation lines joined, comments dropped."""
    out: list[str] = []
    pending = ""
    for line in dockerfile.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append((pending + line).strip())
        pending = ""
    if pending:
        out.append(pending.strip())
    return out


def _render_with(recipe: Recipe, directives: list[dict[str, object]]) -> str:
    copy = recipe.model_copy(
        update={"build": recipe.build.model_copy(update={"directives": directives})}
    )
    return render_dockerfile(copy, RenderContext(copy))


def directive_of_steps(recipe: Recipe) -> list[str]:
    """``labels[i]`` names the source of Dockerfile instruction ``i`` (0 is FROM).

    Names look like ``build.directives[2].install``; the image epilogue (deploy variables,
    README, mount points) is ``epilogue``; unknown steps get ``""``.
    """
    try:
        bare = instructions(_render_with(recipe, []))
    except NeurodeskError:
        return []
    empty = len(bare)
    # Steps before the directives (an epoch label, tzdata, the default template) and after
    # them (its entrypoint, the deploy variables, README, mount points).
    tail = next(
        (i for i, text in enumerate(bare) if text.startswith(("ENTRYPOINT", "ENV DEPLOY_PATH"))),
        empty,
    )
    labels = ["base-image", *["prologue"] * (tail - 1)]
    for index, directive in enumerate(recipe.build.directives):
        kind = next((k for k in directive if k != "condition"), "?")
        try:
            count = len(instructions(_render_with(recipe, [directive]))) - empty
        except NeurodeskError:
            return labels
        labels += [f"build.directives[{index}].{kind}"] * count
    labels += ["epilogue"] * (empty - tail)
    return labels


StepHook = Callable[[int, int, str], None]


def is_instruction(text: str) -> bool:
    return bool(_INSTRUCTION.match(text))
