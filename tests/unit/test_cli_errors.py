"""Bad input gives one clear line, a non-zero exit, and no traceback."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import assert_one_line_error, run_cli


def test_version_and_help(home: Path) -> None:
    proc = run_cli(["--version"], home)
    assert proc.returncode == 0 and "neurodesk" in proc.stdout
    for command in (["--help"], ["exec", "--help"], ["recipe", "check", "--help"]):
        proc = run_cli(command, home)
        assert proc.returncode == 0 and "Usage:" in proc.stdout


def test_unknown_tool(home: Path) -> None:
    proc = run_cli(["exec", "nosuchtool", "--", "true"], home)
    assert_one_line_error(proc, "no image named 'nosuchtool'", "neurodesk build nosuchtool")


def test_unknown_recipe(home: Path) -> None:
    proc = run_cli(["build", "nosuchrecipe"], home)
    assert_one_line_error(proc, "no recipe named 'nosuchrecipe'", "dcm2niix")


def test_malformed_recipe(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "build.yaml"
    bad.write_text("name: x\nversion: '1'\nbuild: {kind: neurodocker}\ncategories: [nope]\n")
    proc = run_cli(["recipe", "check", str(bad)], home)
    assert_one_line_error(proc, f"{bad}: build.base-image: this key is required", "categories")


def test_missing_system_tool(home: Path) -> None:
    # A PATH with only Python on it: buildah cannot be found.
    proc = run_cli(["build", "dcm2niix"], home, env={"PATH": str(Path(sys.executable).parent)})
    assert_one_line_error(proc, "'buildah' is not installed", "apt-get install buildah")
    assert not (home / "store" / "refs").exists()


def test_missing_bubblewrap_stops_the_demo_before_any_work(home: Path) -> None:
    proc = run_cli(["demo"], home, env={"PATH": str(Path(sys.executable).parent)})
    assert_one_line_error(proc, "'bwrap' is not installed", "apt-get install bubblewrap")
    assert not (home / "buildah").exists()


def test_a_single_recipe_problem_is_shown_not_just_counted(home: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "build.yaml"
    recipe.write_text(
        "name: x\nversion: '1'\nbuild: {kind: neurodocker, base-image: 'debian:bookworm', "
        "pkg-manager: apt}\ncategories: [astrology]\n"
    )
    proc = run_cli(["recipe", "check", str(recipe)], home)
    assert_one_line_error(proc, "1 problem(s) found", f"{recipe}: categories", "astrology")
