"""fulltest.yaml: every key accepted, each bad input one clear line; the runner's pure parts
(variables, test selection, dataset lookup, output checks, JUnit)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from neurodesk.build.datasets import DatasetSource, provide_datasets
from neurodesk.build.fulltest import select_tests, suite_variables, validate
from neurodesk.build.junit import junit_xml
from neurodesk.build.testing import TestResult as Result
from neurodesk.errors import ValidationError
from neurodesk.recipe.fulltest import (
    Dataset,
    Validation,
    load_fulltest,
    parse_fulltest,
    substitute,
)

SOURCE = Path("recipes/tool/fulltest.yaml")


def suite(*tests: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"name": "tool", "version": "1.0", "tests": list(tests) or [{"name": "t",
            "command": "true"}], **top}  # fmt: skip


def problems(doc: Any) -> list[str]:
    with pytest.raises(ValidationError) as info:
        parse_fulltest(doc, SOURCE)
    return [p.removeprefix(f"{SOURCE}: ") for p in info.value.problems]


def test_every_key_is_read() -> None:
    parsed = parse_fulltest(
        suite(
            {"name": "a", "command": "run $x", "description": "d",
             "expected_output_contains": ["ok", 3], "expected_exit_code": 2,
             "validate": [{"output_exists": "o"}, {"same_dimensions": ["a", "b"]},
                          {"is_3d": "a"}, {"is_4d": "b"}, {"output_dir_not_empty": "d"}],
             "timeout": 5, "tags": ["quick"], "env_setup": "source x"},
            {"name": "b", "script": "echo\n", "depends_on": "a", "ignore_exit_code": True,
             "expected_exit_code_not": 0, "expected_output_contains": "one"},
            default_timeout=30, env={"A": 1}, env_setup="export B=2",
            test_data={"x": "ds000001/f.nii", "output_dir": "out"},
            required_files=[{"dataset": "ds000001", "files": ["f.nii"]}],
            setup={"script": "s", "host_script": "h"}, cleanup={"script": "c"},
            tool_path="/opt/tool", script_runner="octave", script_ext=".m",
        ),
        SOURCE,
    )  # fmt: skip
    a, b = parsed.tests
    assert a.expected_output == ("ok", "3") and a.expected_exit_code == 2 and a.timeout == 5
    assert [v.kind for v in a.validate] == ["output_exists", "same_dimensions", "is_3d",
                                           "is_4d", "output_dir_not_empty"]  # fmt: skip
    assert b.is_script and b.depends_on == ("a",) and b.expected_exit_code_not == 0
    assert parsed.env == {"A": "1"} and parsed.default_timeout == 30
    assert parsed.required_files == [Dataset("ds000001", ("f.nii",))]
    assert (parsed.setup_script, parsed.setup_host_script, parsed.cleanup_script) == ("s", "h", "c")
    assert parsed.variables == {"name": "tool", "version": "1.0", "tool_path": "/opt/tool"}
    assert parsed.script_runner == "octave"
    assert parsed.warnings == []


@pytest.mark.parametrize(
    ("doc", "line"),
    [
        ([], "(top level): a fulltest file is a mapping with 'name', 'version' and 'tests'"),
        ({"name": "tool", "version": "1"}, "tests: this key is required"),
        (suite(tests="x"), "tests: expected a list of tests, got a string"),
        (suite({"command": "x"}), "tests[0].name: this key is required"),
        (suite({"name": "a"}), "tests[0]: a test needs 'command' or 'script'"),
        (suite({"name": "a", "command": "x", "script": "y"}),
         "tests[0]: give 'command' or 'script', not both"),
        (suite({"name": "a", "comand": "x", "command": "y"}),
         "tests[0].comand: unknown key 'comand'; did you mean 'command'?"),
        (suite({"name": "a", "command": "x", "expected_exit_code": "0"}),
         "tests[0].expected_exit_code: expected a whole number, got a string"),
        (suite({"name": "a", "command": "x", "expected_exit_code_not": True}),
         "tests[0].expected_exit_code_not: expected a whole number, got a boolean"),
        (suite({"name": "a", "command": "x", "expected_output_contains": {"a": 1}}),
         "tests[0].expected_output_contains: expected a string or a list of strings,"
         " got a mapping"),
        (suite({"name": "a", "command": "x", "ignore_exit_code": "yes"}),
         "tests[0].ignore_exit_code: expected true or false, got a string"),
        (suite({"name": "a", "command": "x", "validate": [{"output_exist": "f"}]}),
         "tests[0].validate[0].output_exist: unknown check 'output_exist';"
         " did you mean 'output_exists'?"),
        (suite({"name": "a", "command": "x", "validate": [{"same_dimensions": "f"}]}),
         "tests[0].validate[0].same_dimensions: expected a list of 2 paths, got a string"),
        (suite({"name": "a", "command": "x", "validate": "f"}),
         "tests[0].validate: expected a list of checks, got a string"),
        (suite({"name": "a", "command": "x", "timeout": 0}),
         "tests[0].timeout: must be more than 0, not 0"),
        (suite({"name": "a", "command": "x", "tags": 3}),
         "tests[0].tags: expected a string or a list of strings, got a number"),
        (suite({"name": "convert", "command": "x"}, {"name": "b", "command": "y",
                "depends_on": "convrt"}),
         "tests[1].depends_on: no test named 'convrt'; did you mean 'convert'?"),
        (suite({"name": "a", "command": "x", "depends_on": "a"}),
         "tests[0].depends_on: a test cannot depend on itself"),
        (suite({"name": "a", "command": "x"}, {"name": "a", "command": "y"}),
         "tests[1].name: two tests are named 'a'"),
        (suite(default_timout=5), "default_timout: unknown key 'default_timout';"
         " did you mean 'default_timeout'?"),
        (suite(default_timeout=-1), "default_timeout: must be more than 0, not -1"),
        (suite(env=["A=1"]), "env: expected a mapping of NAME: value, got a list"),
        (suite(env={"A B": "1"}), "env.A B: environment names are letters, digits and '_'"),
        (suite(env_setup=["x"]), "env_setup: expected a string, got a list"),
        (suite(test_data=["a"]), "test_data: expected a mapping of NAME: path, got a list"),
        (suite(setup="echo"), "setup: expected a mapping with 'script' and/or 'host_script',"
         " got a string"),
        (suite(cleanup={"scrpt": "x"}), "cleanup.scrpt: unknown key 'scrpt'; did you mean"
         " 'script' or 'host_script'?"),
        (suite(required_files=[{"dataset": "openneuro1", "files": ["a"]}]),
         "required_files[0].dataset: 'openneuro1' is not an OpenNeuro id like ds000001"),
        (suite(required_files=[{"dataset": "ds000001", "files": ["../etc/passwd"]}]),
         "required_files[0].files[0]: '../etc/passwd' must be a path inside the dataset"),
        (suite(required_files={"dataset": "ds000001"}),
         "required_files: expected a list of {dataset, files}, got a mapping"),
    ],
)  # fmt: skip
def test_bad_inputs_give_one_clear_line(doc: Any, line: str) -> None:
    assert line in problems(doc)


def test_keys_upstream_ignores_are_warnings() -> None:
    parsed = parse_fulltest(
        suite({"name": "a", "command": "x", "container_options": "--nv", "depends_on": "setup"},
              paths={"a": 1}),
        SOURCE,
    )  # fmt: skip
    assert parsed.warnings == [
        f"{SOURCE}: paths: 'paths' is not a known key nor a plain variable; it is ignored",
        f"{SOURCE}: tests[0].container_options: unknown key 'container_options' is ignored"
        " (as upstream's runner does)",
        f"{SOURCE}: tests[0].depends_on: no test named 'setup'; the dependency is ignored",
    ]


def test_name_and_version_must_match_the_recipe(tmp_path: Path) -> None:
    from neurodesk.recipe import load_recipe
    from tests.unit.test_recipe_features import recipe_text, write

    recipe = load_recipe(write(tmp_path, recipe_text([])))
    (tmp_path / "fulltest.yaml").write_text("name: tool\nversion: ${v}\nv: '1.0'\ntests: []\n")
    assert load_fulltest(tmp_path, recipe) is not None
    (tmp_path / "fulltest.yaml").write_text("name: tool\nversion: '2.0'\ntests: []\n")
    with pytest.raises(ValidationError, match=r"version: '2\.0' is not the recipe's version"):
        load_fulltest(tmp_path, recipe)
    (tmp_path / "fulltest.yaml").write_text("tests: [\n")
    with pytest.raises(ValidationError, match=r"fulltest.yaml:2"):
        load_fulltest(tmp_path, recipe)


def test_substitution() -> None:
    values = {"t1": "/d/t1.nii", "t1w": "/d/t1w.nii", "out": "${base}/o", "base": "/w"}
    assert (
        substitute("$t1w ${t1} $t1 $out $t1_x", values)
        == "/d/t1w.nii /d/t1.nii /d/t1.nii /w/o $t1_x"
    )
    assert substitute("a\\b $t1", {"t1": "c\\d"}) == "a\\b c\\d"


def test_variables_and_selection(tmp_path: Path) -> None:
    parsed = parse_fulltest(
        suite({"name": "a", "command": "x", "tags": ["quick"], "depends_on": "b"},
              {"name": "b", "command": "y"}, {"name": "c", "command": "z", "tags": ["manual"]},
              test_data={"t": "ds000001/f", "abs": "/abs/f"}, tool="/opt/${name}-$version"),
        SOURCE,
    )  # fmt: skip
    variables = suite_variables(parsed, tmp_path)
    assert variables["t"] == str(tmp_path / "ds000001/f") and variables["abs"] == "/abs/f"
    assert variables["tool"] == "/opt/tool-1.0"
    assert [t.name for t in select_tests(parsed, ["quick"], False)] == ["a", "b"]
    assert [t.name for t in select_tests(parsed, [], False)] == ["a", "b"]
    assert [t.name for t in select_tests(parsed, [], True)] == ["a", "b", "c"]


def test_datasets_from_a_data_dir_and_one_line_when_missing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "ds000001/sub-01").mkdir(parents=True)
    (data / "ds000001/sub-01/a.nii").write_text("a")
    work = tmp_path / "work"
    missing = provide_datasets(
        [Dataset("ds000001", ("sub-01/a.nii", "sub-01/b.nii"))],
        work,
        DatasetSource((data,), tmp_path / "cache", url=None),
    )
    assert (work / "ds000001/sub-01/a.nii").read_text() == "a"
    assert [(m.dataset, m.files) for m in missing] == [("ds000001", ("sub-01/b.nii",))]


def test_output_checks_on_the_host(tmp_path: Path) -> None:
    import nibabel as nib
    import numpy as np

    nib.save(nib.Nifti1Image(np.zeros((2, 3, 4, 1), "f4"), np.eye(4)), str(tmp_path / "a.nii"))
    nib.save(nib.Nifti1Image(np.zeros((2, 3, 4), "f4"), np.eye(4)), str(tmp_path / "b.nii"))
    (tmp_path / "junk.nii").write_text("not an image")
    assert validate(Validation("is_3d", ("a.nii",)), {}, tmp_path) is None
    assert validate(Validation("is_4d", ("a.nii",)), {}, tmp_path) is None
    reason = validate(Validation("is_4d", ("b.nii",)), {}, tmp_path)
    assert reason == "b.nii is 3-D (2, 3, 4), not 4-D"
    reason = validate(Validation("is_3d", ("junk.nii",)), {}, tmp_path)
    assert reason is not None and reason.startswith("is_3d: cannot read the image")
    assert validate(Validation("output_dir_not_empty", ("x",)), {}, tmp_path) is not None


def test_junit_report() -> None:
    results = [
        Result("ok", "pass", 1.5, "", ["out"]),
        Result("bad", "fail", 0.5, "exit 2", ["line \x01"]),
        Result("later", "skip", 0.0, "depends on bad"),
    ]
    root = ET.fromstring(junit_xml([("tool_1.0_20260101", results)]))
    node = root.find("testsuite")
    assert node is not None and node.get("tests") == "3" and node.get("failures") == "1"
    assert node.get("skipped") == "1"
    failure = root.find("testsuite/testcase[@name='bad']/failure")
    assert failure is not None and failure.get("message") == "exit 2" and failure.text == "line "
