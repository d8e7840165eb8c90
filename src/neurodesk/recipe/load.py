"""Finding and loading recipes, with one error line per problem."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError as PydanticValidationError

from neurodesk.errors import NotFoundError, ValidationError
from neurodesk.recipe.model import Recipe


def recipes_dir() -> Path:
    """The shipped recipes: ``recipes/`` at the repository root, or ``NEURODESK_RECIPES``."""
    import os

    env = os.environ.get("NEURODESK_RECIPES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "recipes"


def find_recipe(name_or_path: str) -> Path:
    """Resolve a recipe name (``dcm2niix``) or a path to its ``build.yaml``."""
    candidate = Path(name_or_path)
    if candidate.is_dir():
        candidate = candidate / "build.yaml"
    if candidate.is_file():
        return candidate
    shipped = recipes_dir() / name_or_path / "build.yaml"
    if shipped.is_file():
        return shipped
    known = sorted(p.parent.name for p in recipes_dir().glob("*/build.yaml"))
    raise NotFoundError(
        f"no recipe named '{name_or_path}'",
        hint=f"known recipes: {', '.join(known) or 'none'}; or pass a path to a build.yaml",
    )


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def load_recipe(path: Path) -> Recipe:
    """Parse and validate ``path``; raise ValidationError listing ``file: key.path: reason``."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        reason = getattr(exc, "problem", None) or "invalid YAML"
        raise ValidationError(
            f"{path}{where}: {reason}", [f"{path}{where}: {reason}"], hint="fix the YAML syntax"
        ) from None
    except OSError as exc:
        raise NotFoundError(f"cannot read {path}: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise ValidationError(
            f"{path}: a recipe must be a YAML mapping", [f"{path}: not a mapping"]
        )
    try:
        return Recipe.model_validate(data)
    except PydanticValidationError as exc:
        problems = [f"{path}: {_key_path(err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise ValidationError(
            f"{path}: {len(problems)} problem(s): " + "; ".join(problems[:3]),
            problems,
            hint="see the recipe format in DESIGN.md",
        ) from None
