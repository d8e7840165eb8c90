"""Static checks of ``build.directives``: one problem line per mistake, with its key path.

A directive is a mapping with exactly one kind key (``install``, ``run``, ``template``, ...),
plus an optional ``condition:`` (a Jinja expression) and, for ``group``/``include``, ``with:``
(variables for the nested directives). Checks here need no rendering: shapes, types, Jinja
syntax, template names/methods/arguments/versions, and the directives of included files. What
depends on values (undefined names, a ``get_file`` of an undeclared file) is found at render.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from neurodesk.recipe.context import expression_problem, has_jinja, syntax_problem
from neurodesk.recipe.model import Deploy, FileSpec
from neurodesk.recipe.templates import TemplateProblem, check_arguments
from neurodesk.recipe.tests import RecipeTest, key_path
from neurodesk.recipe.wording import describe, did_you_mean, unknown

KINDS = (
    "install",
    "run",
    "workdir",
    "user",
    "entrypoint",
    "environment",
    "copy",
    "file",
    "template",
    "group",
    "include",
    "variables",
    "test",
    "deploy",
    "boutique",
)
MAX_INCLUDE_DEPTH = 8

Report = Callable[[str, str], None]  # (key path, reason)


def directive_kind(directive: dict[str, Any]) -> str | None:
    kinds = [k for k in directive if k in KINDS]
    return kinds[0] if len(kinds) == 1 else None


def resolve_include(name: str, recipe_dir: Path) -> Path | None:
    """An include names a YAML file relative to the recipe, or to the repository root."""
    for base in (recipe_dir, recipe_dir.parent.parent, recipe_dir.parent):
        candidate = base / name
        if candidate.is_file():
            return candidate
    return None


def read_include(path: Path) -> tuple[list[Any] | None, str | None]:
    """The directives of an include file (``{builder: neurodocker, directives: [...]}``)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return None, f"cannot read include {path}: {type(exc).__name__}"
    if not isinstance(data, dict) or not isinstance(data.get("directives"), list):
        return None, f"include {path} must be a mapping with a 'directives' list"
    if data.get("builder", "neurodocker") != "neurodocker":
        return None, f"include {path}: builder must be 'neurodocker'"
    return data["directives"], None


class DirectiveChecker:
    """Walks directives, reporting ``(key path, reason)`` for each problem."""

    def __init__(self, recipe_dir: Path, report: Report, include_report: Callable[[Path], Report]):
        self.recipe_dir = recipe_dir
        self.report = report
        self.include_report = include_report
        self.depth = 0

    def check_list(self, directives: Any, where: str, report: Report | None = None) -> None:
        report = report or self.report
        if not isinstance(directives, list):
            report(where, "directives are a list")
            return
        for index, directive in enumerate(directives):
            self.check_one(directive, f"{where}[{index}]", report)

    def check_one(self, directive: Any, where: str, report: Report) -> None:
        if not isinstance(directive, dict):
            report(where, f"a directive is a mapping, got {type(directive).__name__}")
            return
        kinds = [k for k in directive if k in KINDS]
        extra = [k for k in directive if k not in KINDS and k not in ("condition", "with")]
        if kinds == ["group"]:
            # Upstream's editor marks groups it generated from its own macros.
            extra = [k for k in extra if k not in ("custom", "customParams")]
        if not kinds:
            if extra:
                for key in extra:
                    report(
                        f"{where}.{key}",
                        unknown("directive", str(key), KINDS, show_all=len(KINDS)),
                    )
            else:
                report(where, f"a directive needs one of: {', '.join(KINDS)}")
            return
        if len(kinds) > 1:
            report(where, f"a directive has exactly one kind, found {', '.join(kinds)}")
            return
        kind = kinds[0]
        allowed = ["condition", "with"] if kind in ("group", "include") else ["condition"]
        for key in extra:
            report(
                f"{where}.{key}",
                f"unknown key '{key}' beside '{kind}'" + did_you_mean(str(key), [*KINDS, *allowed]),
            )
        if kind == "group" and not isinstance(directive.get("customParams", {}), dict):
            report(f"{where}.customParams", "customParams is a mapping")
        if "condition" in directive:
            cond = directive["condition"]
            if not isinstance(cond, str) or not cond.strip():
                report(f"{where}.condition", "a condition is a Jinja expression (a string)")
            elif problem := expression_problem(cond):
                report(f"{where}.condition", problem)
        if "with" in directive:
            if kind not in ("group", "include"):
                report(f"{where}.with", "'with' only goes with 'group' or 'include'")
            elif not isinstance(directive["with"], dict):
                report(f"{where}.with", "'with' is a mapping of variable names to values")
            else:
                self._identifiers(directive["with"], f"{where}.with", report)
                self._jinja(directive["with"], f"{where}.with", report)
        getattr(self, f"_{kind}")(directive[kind], f"{where}.{kind}", report)

    # -- helpers ------------------------------------------------------------------------------

    def _jinja(self, value: Any, where: str, report: Report) -> None:
        if isinstance(value, str):
            if problem := syntax_problem(value):
                report(where, problem)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self._jinja(item, f"{where}[{i}]", report)
        elif isinstance(value, dict):
            for key, item in value.items():
                self._jinja(item, f"{where}.{key}", report)

    def _identifiers(self, value: dict[Any, Any], where: str, report: Report) -> None:
        for key in value:
            if not (isinstance(key, str) and key.isidentifier()):
                report(f"{where}.{key}", "variable names must be identifiers")

    def _strings(self, value: Any, where: str, report: Report, allow_str: bool = True) -> None:
        if isinstance(value, str) and allow_str:
            self._jinja(value, where, report)
            return
        if not isinstance(value, list):
            report(where, "expected a list of strings" + (" or a string" if allow_str else ""))
            return
        for i, item in enumerate(value):
            if not isinstance(item, str):
                report(f"{where}[{i}]", f"expected a string, got {type(item).__name__}")
            else:
                self._jinja(item, f"{where}[{i}]", report)

    def _string(self, value: Any, where: str, report: Report) -> None:
        if not isinstance(value, str) or not value.strip():
            report(where, "expected a non-empty string")
        else:
            self._jinja(value, where, report)

    def _model(self, model: type[BaseModel], value: Any, where: str, report: Report) -> None:
        try:
            model.model_validate(value)
        except PydanticValidationError as exc:
            for err in exc.errors():
                loc = key_path(err["loc"])
                report(f"{where}.{loc}" if err["loc"] else where, describe(err, model))
            return
        self._jinja(value, where, report)

    # -- one method per directive kind --------------------------------------------------------

    def _install(self, value: Any, where: str, report: Report) -> None:
        self._strings(value, where, report)
        if isinstance(value, str | list) and not value:
            report(where, "install at least one package")

    def _run(self, value: Any, where: str, report: Report) -> None:
        self._strings(value, where, report)
        if isinstance(value, str | list) and not value:
            report(where, "run at least one command")

    def _workdir(self, value: Any, where: str, report: Report) -> None:
        self._string(value, where, report)

    def _user(self, value: Any, where: str, report: Report) -> None:
        self._string(value, where, report)

    def _entrypoint(self, value: Any, where: str, report: Report) -> None:
        self._string(value, where, report)

    def _environment(self, value: Any, where: str, report: Report) -> None:
        if not isinstance(value, dict) or not value:
            report(where, "environment is a non-empty mapping of NAME: value")
            return
        for key, item in value.items():
            if not (isinstance(key, str) and (key.isidentifier() or has_jinja(key))):
                report(f"{where}.{key}", "environment names are identifiers")
            if not isinstance(item, str | int | float | bool):
                report(f"{where}.{key}", "environment values are strings or numbers")
            elif isinstance(item, str):
                self._jinja(item, f"{where}.{key}", report)

    def _copy(self, value: Any, where: str, report: Report) -> None:
        self._strings(value, where, report)
        parts = value.split() if isinstance(value, str) else value
        if isinstance(parts, list) and len(parts) < 2:
            report(where, "copy needs one or more sources and a destination")

    def _file(self, value: Any, where: str, report: Report) -> None:
        self._model(FileSpec, value, where, report)

    def _template(self, value: Any, where: str, report: Report) -> None:
        if not isinstance(value, dict):
            report(where, "a template is a mapping with 'name' and its arguments")
            return
        self._jinja(value, where, report)
        if any(isinstance(v, str) and has_jinja(v) for k, v in value.items() if k == "name"):
            return  # a computed template name is checked at render
        try:
            check_arguments(value)
        except TemplateProblem as exc:
            report(f"{where}.{exc.key}", exc.reason)

    def _group(self, value: Any, where: str, report: Report) -> None:
        self.check_list(value, where, report)

    def _include(self, value: Any, where: str, report: Report) -> None:
        if not isinstance(value, str) or not value.strip():
            report(where, "include names a YAML file of directives")
            return
        if has_jinja(value):
            self._jinja(value, where, report)
            return
        path = resolve_include(value, self.recipe_dir)
        if path is None:
            report(
                where, f"include file '{value}' not found beside the recipe or in the repository"
            )
            return
        if self.depth >= MAX_INCLUDE_DEPTH:
            report(where, f"includes nest deeper than {MAX_INCLUDE_DEPTH} (a loop?)")
            return
        directives, problem = read_include(path)
        if problem:
            report(where, problem)
            return
        self.depth += 1
        try:
            self.check_list(directives, "directives", self.include_report(path))
        finally:
            self.depth -= 1

    def _variables(self, value: Any, where: str, report: Report) -> None:
        if not isinstance(value, dict):
            report(where, "variables is a mapping of names to values")
            return
        self._identifiers(value, where, report)
        self._jinja(value, where, report)

    def _test(self, value: Any, where: str, report: Report) -> None:
        self._model(RecipeTest, value, where, report)

    def _deploy(self, value: Any, where: str, report: Report) -> None:
        self._model(Deploy, value, where, report)

    def _boutique(self, value: Any, where: str, report: Report) -> None:
        if not isinstance(value, dict):
            report(where, "a boutique directive is a Boutiques descriptor (a mapping)")
            return
        for key in ("name", "command-line"):
            if not isinstance(value.get(key), str) or not value.get(key):
                report(f"{where}.{key}", "a Boutiques descriptor needs this string")
        name = value.get("name")
        if isinstance(name, str) and not all(c.isalnum() or c in "._-" for c in name):
            report(f"{where}.name", "use letters, digits, '.', '_' and '-' (it names a file)")
        if "inputs" in value and not isinstance(value["inputs"], list):
            report(f"{where}.inputs", "inputs is a list")
