"""test.yaml model: scripts, builtins, and one error line per problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from neurodesk.errors import ValidationError
from neurodesk.recipe.tests import RecipeTest, load_tests


def test_missing_test_yaml_means_no_tests(tmp_path: Path) -> None:
    assert load_tests(tmp_path) == []


def test_scripts_and_builtins_in_file_order(tmp_path: Path) -> None:
    (tmp_path / "test.yaml").write_text(
        "tests:\n"
        "  - name: runs\n    prep: echo prep\n    script: echo hi\n"
        "  - name: deploy\n    builtin: test_deploy.sh\n"
        "  - name: gui\n    script: mricron\n    manual: true\n"
    )
    (tmp_path / "build.yaml").write_text(
        "build:\n  directives:\n    - test: {name: inline, script: 'true'}\n"
        "    - test: {name: skipped, script: 'true'}\n      condition: arch == 'x'\n"
    )
    tests = load_tests(tmp_path)
    assert [t.name for t in tests] == ["runs", "deploy", "gui", "inline"]
    assert tests[0] == RecipeTest(name="runs", prep="echo prep", script="echo hi")
    assert tests[1].builtin == "test_deploy.sh"
    assert tests[2].manual is True


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("tests:\n  - name: a\n", "tests[0]"),
        ("tests:\n  - name: a\n    script: x\n    builtin: test_deploy.sh\n", "tests[0]"),
        ("tests:\n  - name: a\n    builtin: nope.sh\n", "tests[0].builtin"),
        ("tests:\n  - script: x\n", "tests[0].name"),
        ("tests:\n  - name: a\n    script: x\n    colour: red\n", "tests[0].colour"),
        ("tests: 3\n", "tests"),
    ],
)
def test_bad_tests_name_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "test.yaml"
    path.write_text(text)
    with pytest.raises(ValidationError) as info:
        load_tests(tmp_path)
    assert any(p.startswith(f"{path}: {key}:") for p in info.value.problems), info.value.problems


def test_yaml_error_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "test.yaml").write_text("tests: [\n")
    with pytest.raises(ValidationError, match=r"test.yaml:2"):
        load_tests(tmp_path)
