"""A recipe's tests: ``test.yaml`` beside ``build.yaml`` (and ``test`` directives inside it).

The format (upstream neurocontainers)::

    tests:
      - name: converts a generated series
        prep: |                  # optional: run first; a failure here is an error, not a failure
          python3 make_data.py
        script: |                # run with /bin/sh -e inside the built image, cwd a scratch dir
          dcm2niix -o out in/
          test -f out/*.nii
        manual: false            # optional: true = skipped by automatic runs (needs a human/GUI)
      - name: deployed commands resolve
        builtin: test_deploy.sh  # a check we ship: every deployed binary exists, its interpreter
                                 # exists, its shared libraries resolve

``load_tests(recipe_dir)`` returns the list of :class:`RecipeTest` in file order: first the
entries of ``test.yaml``, then ``test`` directives found at the top level of
``build.directives`` (without a ``condition``). A missing ``test.yaml`` gives ``[]``; a malformed
one raises :class:`~neurodesk.errors.ValidationError` with one ``<file>: <key.path>: <reason>``
line per problem. ``neurodesk test`` (issue 4) runs them; this module only models them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from neurodesk.errors import ValidationError
from neurodesk.recipe.wording import describe

BUILTINS = ("test_deploy.sh",)


class RecipeTest(BaseModel):
    """One test: either a ``script`` (with optional ``prep``) or a ``builtin`` check."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    script: str | None = None
    prep: str | None = None
    builtin: Literal["test_deploy.sh"] | None = None
    manual: bool = False
    # Upstream's script tests may name the interpreter that runs them (e.g. "python3").
    executable: str | None = None

    @field_validator("manual", mode="before")
    @classmethod
    def _null_false(cls, value: Any) -> Any:
        return False if value is None else value

    @model_validator(mode="after")
    def _script_or_builtin(self) -> RecipeTest:
        if (self.script is None) == (self.builtin is None):
            raise ValueError("a test has exactly one of 'script' or 'builtin'")
        if self.builtin is not None and self.prep is not None:
            raise ValueError("'prep' only goes with 'script'")
        return self


class TestFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tests: list[RecipeTest]


def one_line(text: str) -> str:
    """``text`` with control characters escaped, so that a problem stays on one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def key_path(loc: tuple[int | str, ...]) -> str:
    """pydantic's error location as ``a.b[3].c``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return one_line(out) or "(top level)"


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        line = f"{path}{where}: {getattr(exc, 'problem', None) or 'invalid YAML'}"
        raise ValidationError(line, [line], hint="fix the YAML syntax") from None
    except (OSError, UnicodeDecodeError) as exc:
        line = f"{path}: cannot read: {exc}"
        raise ValidationError(line, [line]) from None


def parse_tests(data: Any, source: Path) -> list[RecipeTest]:
    """Validate a parsed ``test.yaml`` document."""
    try:
        return TestFile.model_validate(data).tests
    except PydanticValidationError as exc:
        problems = [
            f"{source}: {key_path(e['loc'])}: {one_line(describe(e, TestFile))}"
            for e in exc.errors()
        ]
        raise ValidationError(
            f"{source}: {len(problems)} problem(s): " + "; ".join(problems[:3]),
            problems,
            hint="each test needs 'name' and one of 'script' or 'builtin'",
        ) from None


def _directive_tests(build_yaml: Path) -> list[RecipeTest]:
    if not build_yaml.is_file():
        return []
    data = _read_yaml(build_yaml)
    build = data.get("build") if isinstance(data, dict) else None
    directives = build.get("directives", []) if isinstance(build, dict) else []
    bodies: list[tuple[str, Any]] = [
        (f"tests[{i}]", t)
        for i, t in enumerate(data.get("tests") or [] if isinstance(data, dict) else [])
    ]
    bodies += [
        (f"build.directives[{i}].test", d["test"])
        for i, d in enumerate(directives if isinstance(directives, list) else [])
        if isinstance(d, dict) and "test" in d and "condition" not in d
    ]
    out: list[RecipeTest] = []
    for loc, body in bodies:
        try:
            out.append(RecipeTest.model_validate(body))
        except PydanticValidationError as exc:
            problems = [
                f"{build_yaml}: {loc}.{key_path(e['loc'])}: {describe(e, RecipeTest)}"
                for e in exc.errors()
            ]
            raise ValidationError(problems[0], problems) from None
    return out


def load_tests(recipe_dir: Path) -> list[RecipeTest]:
    """The tests of the recipe in ``recipe_dir`` (``test.yaml`` first, then ``test`` directives)."""
    test_yaml = recipe_dir / "test.yaml"
    tests: list[RecipeTest] = []
    if test_yaml.is_file():
        data = _read_yaml(test_yaml)
        tests.extend(parse_tests(data if data is not None else {}, test_yaml))
    tests.extend(_directive_tests(recipe_dir / "build.yaml"))
    return tests
