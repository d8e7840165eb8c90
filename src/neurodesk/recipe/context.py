"""The Jinja context a recipe's strings are rendered with (strict: unknown names are errors).

Names visible to every string of a recipe (the upstream neurocontainers context):

- ``context.name``, ``context.version`` (with option suffixes), ``context.options.<opt>``, and
  ``context.<var>`` for each top-level ``variables:`` entry (a value, or ``{try: [{condition,
  value}, ...]}``: the first entry whose condition holds);
- ``arch`` (``x86_64``/``aarch64``), ``parallel_jobs`` (CPUs of the build machine);
- ``local.<var>``: variables set by a ``variables`` directive or a ``group``/``include`` ``with:``;
- ``get_file(name)``: the path inside the image of a file declared under ``files:`` or by a
  ``file`` directive.

Rendering runs in Jinja's sandbox: a recipe is data, and a bad expression (``{{ 1/0 }}``,
``{{ nope }}``) becomes one error line naming its key path, never a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jinja2
import jinja2.sandbox

from neurodesk.errors import ValidationError
from neurodesk.recipe.model import FileSpec, Recipe
from neurodesk.recipe.tests import one_line

_ENV = jinja2.sandbox.SandboxedEnvironment(
    undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
)

_ARCH_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}

# Where declared files land inside the image; get_file() returns paths below it.
FILES_DIR = "/.neurodesk/files"
# Where --local directories are mounted during the build steps that use them.
LOCALS_DIR = "/.neurodesk/local"


def host_arch() -> str:
    machine = os.uname().machine
    return _ARCH_ALIASES.get(machine, machine)


def default_parallel_jobs() -> int:
    env = os.environ.get("NEURODESK_PARALLEL_JOBS", "")
    return int(env) if env.isdigit() and int(env) > 0 else (os.cpu_count() or 1)


def has_jinja(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


@lru_cache(maxsize=4096)
def _compile(text: str) -> jinja2.Template:
    return _ENV.from_string(text)


@lru_cache(maxsize=1024)
def _compile_expression(text: str) -> Any:
    return _ENV.compile_expression(text, undefined_to_none=False)


def syntax_problem(text: str) -> str | None:
    """The Jinja syntax error in ``text``, if any (checked at load time, before rendering)."""
    if not has_jinja(text):
        return None
    try:
        _compile(text)
    except jinja2.TemplateSyntaxError as exc:
        return f"Jinja syntax error: {exc.message}"
    except Exception as exc:  # the compiler can fail on odd input too (e.g. huge literals)
        return f"Jinja error: {exc}"
    return None


def expression_problem(text: str) -> str | None:
    try:
        _compile_expression(text)
    except jinja2.TemplateSyntaxError as exc:
        return f"Jinja syntax error: {exc.message}"
    except Exception as exc:
        return f"Jinja error: {exc}"
    return None


class _GetFileError(Exception):
    pass


class RecipeRaised(Exception):
    """``{{ raise("message") }}`` in a recipe: the recipe refuses this combination."""


def raise_error(message: Any = "raised by the recipe") -> None:
    raise RecipeRaised(str(message))


def image_name(name: str, variant: str) -> str:
    """The published name of a variant: ``<name>_<variant>`` (``fsl_gpu``, ``fsl_arm64``)."""
    return f"{name}_{variant}" if variant else name


def _fail(where: str, reason: str, hint: str | None = None) -> ValidationError:
    line = one_line(f"{where}: {reason}")
    return ValidationError(line, [line], hint=hint)


class RenderContext:
    """Values visible to a recipe's Jinja expressions, and the files declared so far."""

    def __init__(
        self,
        recipe: Recipe,
        arch: str | None = None,
        parallel_jobs: int | None = None,
        *,
        variant: str | None = None,
        locals_: Mapping[str, str] | None = None,
    ) -> None:
        self.recipe = recipe
        self.arch = arch or host_arch()
        self.parallel_jobs = parallel_jobs or default_parallel_jobs()
        self.variant = recipe.variant if variant is None else variant
        # --local KEY=PATH: host directories a recipe may use (has_local/get_local).
        self.locals: dict[str, str] = dict(locals_ or {})
        self.used_locals: list[str] = []
        # problems that do not stop a render but would stop a build (shown by `recipe check`)
        self.warnings: list[str] = []
        self.local: dict[str, Any] = {}
        self.files: dict[str, FileSpec] = {f.name: f for f in recipe.files}
        self._where_prefix = f"{recipe.source}: " if recipe.source is not None else ""
        self._context: dict[str, Any] = {
            "name": image_name(recipe.name, self.variant),
            "version": recipe.version,
            "original_version": recipe.base_version,
            "arch": self.arch,
            "variant": self.variant,
            "parallel_jobs": self.parallel_jobs,
            "options": dict(recipe.option_values),
            "has_local": self.has_local,
            "get_local": self.get_local,
            "get_file": self.get_file,
        }
        self._values: dict[str, Any] = {}
        for key, value in recipe.variables.items():
            self._values[key] = self.evaluate(value, f"variables.{key}")

    def has_local(self, key: Any) -> bool:
        return isinstance(key, str) and key in self.locals

    def get_local(self, key: Any) -> str:
        if not self.has_local(key):
            known = ", ".join(sorted(self.locals)) or "none"
            raise _GetFileError(
                f"get_local({key!r}): no such local directory (given with --local: {known})"
            )
        self.used_locals.append(key)  # every use: a plan made again must see it again
        return f"{LOCALS_DIR}/{key}"

    def get_file(self, name: Any) -> str:
        if not isinstance(name, str) or name not in self.files:
            known = ", ".join(sorted(self.files)) or "none"
            raise _GetFileError(f"get_file({name!r}): no such file (declared: {known})")
        return f"{FILES_DIR}/{name}"

    def variables(self, local: Mapping[str, Any] | None = None) -> dict[str, Any]:
        # As upstream: recipe variables and directive variables are visible as bare names, as
        # context.<name> and as local.<name> (the innermost group's `with:` wins).
        values = {**self._values, **(self.local if local is None else local)}
        return {
            **values,
            "context": {**values, **self._context},
            "local": values,
            "arch": self.arch,
            "parallel_jobs": self.parallel_jobs,
            "get_file": self.get_file,
            "has_local": self.has_local,
            "get_local": self.get_local,
            "raise": raise_error,
        }

    def render(self, text: str, where: str, local: Mapping[str, Any] | None = None) -> str:
        """Render one string of the recipe; ``where`` names its key path for errors."""
        if not isinstance(text, str):
            raise _fail(self._where_prefix + where, f"expected a string, got {type(text).__name__}")
        if not has_jinja(text):
            return text
        try:
            return _compile(text).render(self.variables(local))
        except jinja2.TemplateSyntaxError as exc:
            raise _fail(self._where_prefix + where, f"Jinja syntax error: {exc.message}") from None
        except jinja2.UndefinedError as exc:
            raise _fail(
                self._where_prefix + where,
                exc.message or "undefined name",
                hint="known names: context.*, arch, parallel_jobs, local.*, variables,"
                " get_file(), has_local(), get_local()",
            ) from None
        except _GetFileError as exc:
            hint = "pass --local KEY=PATH" if "get_local" in str(exc) else "declare it under files:"
            raise _fail(self._where_prefix + where, str(exc), hint=hint) from None
        except RecipeRaised as exc:
            raise _fail(self._where_prefix + where, f"the recipe says: {exc}") from None
        except Exception as exc:  # a recipe expression may raise anything (1/0, "a" + 1, ...)
            raise _fail(
                self._where_prefix + where, f"Jinja error: {type(exc).__name__}: {exc}"
            ) from None

    def condition(
        self, expression: str, where: str, local: Mapping[str, Any] | None = None
    ) -> bool:
        """Evaluate a ``condition:``; like upstream, only a result of ``True`` counts as true."""
        if not isinstance(expression, str) or not expression.strip():
            raise _fail(self._where_prefix + where, "a condition is a non-empty Jinja expression")
        return self.render("{{ " + expression + " }}", where, local) == "True"

    def evaluate(self, value: Any, where: str, local: Mapping[str, Any] | None = None) -> Any:
        """Render every string in a YAML value; ``{try: [{condition, value}]}`` picks one."""
        if isinstance(value, str):
            return self.render(value, where, local)
        if isinstance(value, list):
            return [self.evaluate(v, f"{where}[{i}]", local) for i, v in enumerate(value)]
        if isinstance(value, dict):
            if "try" in value:
                return self._try(value, where, local)
            return {
                self.render(str(k), where, local): self.evaluate(v, f"{where}.{k}", local)
                for k, v in value.items()
            }
        if value is None or isinstance(value, bool | int | float):
            return value
        raise _fail(self._where_prefix + where, f"unsupported value type {type(value).__name__}")

    def _try(self, value: dict[str, Any], where: str, local: Mapping[str, Any] | None) -> Any:
        options = value["try"]
        if not isinstance(options, list) or len(value) != 1:
            raise _fail(self._where_prefix + where, "'try' is a list of {condition, value}")
        for i, option in enumerate(options):
            if not isinstance(option, dict) or set(option) != {"condition", "value"}:
                raise _fail(
                    self._where_prefix + f"{where}.try[{i}]",
                    "needs exactly 'condition' and 'value'",
                )
            if self.condition(option["condition"], f"{where}.try[{i}].condition", local):
                return self.evaluate(option["value"], f"{where}.try[{i}].value", local)
        raise _fail(self._where_prefix + where, "no 'try' condition holds")
