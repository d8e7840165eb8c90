"""`recipe check --all --recipes DIR` and `test --all` over a whole checkout, with a summary."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.conftest import assert_one_line_error, run_cli
from tests.unit.test_recipe_features import recipe_text


def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "recipes"
    good = recipe_text([{"run": ["true"]}], name="good")
    typo = recipe_text([{"instal": "curl"}], name="typo")
    suite = recipe_text([{"run": ["true"]}], name="suite")
    for data in (good, typo, suite):
        (root / data["name"]).mkdir(parents=True)
        (root / data["name"] / "build.yaml").write_text(yaml.safe_dump(data))
    (root / "suite" / "fulltest.yaml").write_text(
        "name: suite\nversion: '1.0'\ntests:\n  - name: a\n    comand: true\n"
    )
    return root


def test_check_all_over_a_checkout_prints_a_summary(home: Path, tmp_path: Path) -> None:
    root = checkout(tmp_path)
    proc = run_cli(["recipe", "check", "--all", "--recipes", str(root)], home)
    assert proc.returncode != 0
    assert "3 recipes: 1 accepted, 2 refused, 0 tracebacks" in proc.stdout
    assert "unknown directive 'instal'; did you mean 'install'?" in proc.stderr
    assert "tests[0].comand: unknown key 'comand'; did you mean 'command'?" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_check_all_of_a_missing_directory_is_one_line(home: Path, tmp_path: Path) -> None:
    proc = run_cli(["recipe", "check", "--all", "--recipes", str(tmp_path / "nope")], home)
    assert_one_line_error(proc, "no recipes directory")


def test_test_all_reports_unbuilt_recipes(home: Path, tmp_path: Path) -> None:
    root = tmp_path / "recipes"
    data = recipe_text([{"run": ["true"]}], name="good")
    (root / "good").mkdir(parents=True)
    (root / "good" / "build.yaml").write_text(yaml.safe_dump(data))
    proc = run_cli(["test", "--all", "--recipes", str(root)], home)
    assert proc.returncode == 0, proc.stderr
    assert "1 recipes: 0 passed, 0 failed, 0 refused, 1 not built, 0 tracebacks" in proc.stdout
    assert "not built: " in proc.stderr


def test_test_of_a_recipe_with_a_broken_suite_is_one_line(home: Path, tmp_path: Path) -> None:
    root = checkout(tmp_path)
    proc = run_cli(["test", str(root / "suite")], home)
    assert_one_line_error(proc, "fulltest.yaml")


def test_test_all_with_a_missing_recipes_directory_names_it(tmp_path: Path) -> None:
    """`test --all` and `recipe check --all` share one reading of --recipes DIR."""
    for args in (["test", "--all"], ["recipe", "check", "--all"]):
        proc = run_cli([*args, "--recipes", str(tmp_path / "none")], tmp_path / "home")
        assert_one_line_error(proc, "no recipes directory", "--recipes DIR")
