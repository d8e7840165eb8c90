"""Finding and loading recipes; one error line per problem: ``<file>: <key.path>: <reason>``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError as PydanticValidationError

from neurodesk.errors import NotFoundError, ValidationError
from neurodesk.recipe.context import syntax_problem
from neurodesk.recipe.directives import DirectiveChecker, Report
from neurodesk.recipe.model import Recipe
from neurodesk.recipe.tests import key_path, one_line
from neurodesk.recipe.wording import describe


def recipes_dir() -> Path:
    """The shipped recipes: ``recipes/`` at the repository root, or ``NEURODESK_RECIPES``."""
    env = os.environ.get("NEURODESK_RECIPES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "recipes"


def recipe_dirs(root: Path | None = None) -> list[Path]:
    """Every recipe directory (one holding ``build.yaml``) of ``root``, default the shipped ones."""
    root = root or recipes_dir()
    if not root.is_dir():
        raise NotFoundError(f"no recipes directory {root}", hint="pass --recipes DIR")
    return sorted(p.parent for p in root.glob("*/build.yaml"))


def shipped_recipes() -> list[Path]:
    """Every ``recipes/<name>/build.yaml``, sorted by name."""
    return sorted(recipes_dir().glob("*/build.yaml"))


def find_recipe(name_or_path: str) -> Path:
    """Resolve a recipe name (``dcm2niix``) or a path to its ``build.yaml``."""
    candidate = Path(name_or_path)
    if candidate.is_dir():
        candidate = candidate / "build.yaml"
    if candidate.is_file():
        return candidate
    if "/" not in name_or_path and name_or_path not in ("", ".", ".."):
        shipped = recipes_dir() / name_or_path / "build.yaml"
        if shipped.is_file():
            return shipped
    known = sorted(p.parent.name for p in shipped_recipes())
    raise NotFoundError(
        f"no recipe named '{name_or_path}'",
        hint=f"known recipes: {', '.join(known) or 'none'}; or pass a path to a build.yaml",
    )


def read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        reason = getattr(exc, "problem", None) or "invalid YAML"
        line = f"{path}{where}: {reason}"
        raise ValidationError(line, [line], hint="fix the YAML syntax") from None
    except UnicodeDecodeError:
        line = f"{path}: not UTF-8 text"
        raise ValidationError(line, [line]) from None
    except OSError as exc:
        raise NotFoundError(f"cannot read {path}: {exc.strerror}") from None


def _jinja_problems(data: dict[str, Any], report: Report) -> None:
    """Jinja syntax in the top-level strings that are rendered (directives are checked apart)."""

    def walk(value: Any, where: str) -> None:
        if isinstance(value, str):
            if problem := syntax_problem(value):
                report(where, problem)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{where}[{i}]")
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{where}.{key}")

    for key in ("readme", "readme_url", "deploy", "variables", "files"):
        if key in data:
            walk(data[key], key)
    build = data.get("build")
    if isinstance(build, dict) and "base-image" in build:
        walk(build["base-image"], "build.base-image")


def validate_data(data: Any, path: Path) -> Recipe:
    """Validate a parsed recipe; raise ValidationError listing every problem found."""
    problems: list[str] = []

    def reporter(file: Path) -> Report:
        return lambda where, reason: problems.append(
            f"{file}: {one_line(where)}: {one_line(reason)}"
        )

    if not isinstance(data, dict):
        line = f"{path}: (top level): a recipe is a YAML mapping"
        raise ValidationError(line, [line], hint="see docs/recipe-format.md")
    recipe: Recipe | None = None
    try:
        recipe = Recipe.model_validate(data)
    except PydanticValidationError as exc:
        for err in exc.errors():
            loc = key_path(tuple("version" if p == "base_version" else p for p in err["loc"]))
            problems.append(f"{path}: {loc}: {one_line(describe(err, Recipe))}")
    build = data.get("build")
    directives = build.get("directives") if isinstance(build, dict) else None
    if isinstance(directives, list):
        checker = DirectiveChecker(path.parent, reporter(path), reporter)
        checker.check_list(directives, "build.directives")
    _jinja_problems(data, reporter(path))
    if problems or recipe is None:
        raise ValidationError(
            f"{path}: {len(problems)} problem(s): " + "; ".join(problems[:2]),
            problems,
            hint="see docs/recipe-format.md",
        )
    recipe._source = path
    return recipe


def load_recipe(path: Path) -> Recipe:
    """Parse and validate ``path``; raise ValidationError listing ``file: key.path: reason``."""
    return validate_data(read_yaml(path), path)
