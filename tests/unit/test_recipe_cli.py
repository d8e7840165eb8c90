"""`neurodesk recipe check|render|new|list` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import assert_one_line_error, run_cli


def test_check_all_passes_for_the_shipped_recipes(home: Path) -> None:
    proc = run_cli(["recipe", "check", "--all"], home)
    assert proc.returncode == 0, proc.stderr
    ok = [line for line in proc.stdout.splitlines() if line.startswith("ok  ")]
    assert len(ok) >= 16


def test_render_both_formats(home: Path) -> None:
    docker = run_cli(["recipe", "render", "mrtrix3"], home)
    apptainer = run_cli(["recipe", "render", "mrtrix3", "--format", "apptainer"], home)
    assert docker.returncode == 0 and apptainer.returncode == 0
    assert docker.stdout.splitlines()[1] == "FROM debian:bookworm"
    assert "Bootstrap: docker\nFrom: debian:bookworm" in apptainer.stdout
    assert 'export DEPLOY_PATH="/usr/lib/mrtrix3/bin"' in apptainer.stdout


def test_new_scaffolds_a_recipe_that_passes_check(home: Path, tmp_path: Path) -> None:
    target = tmp_path / "mytool"
    proc = run_cli(
        ["recipe", "new", "mytool", "--dir", str(target), "--package", "jq", "--command", "jq"],
        home,
    )
    assert proc.returncode == 0, proc.stderr
    assert (target / "build.yaml").is_file() and (target / "fulltest.yaml").is_file()
    check = run_cli(["recipe", "check", str(target)], home)
    assert check.returncode == 0, check.stderr
    again = run_cli(["recipe", "new", "mytool", "--dir", str(target)], home)
    assert_one_line_error(again, "already exists")


def test_list_json(home: Path) -> None:
    proc = run_cli(["recipe", "list", "--json"], home)
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert rows["mricron"]["gui_apps"] == [{"name": "mricronGUI", "exec": "mricron"}]
    assert "diffusion imaging" in rows["mrtrix3"]["categories"]


def test_bad_recipe_lists_every_problem_with_key_paths(home: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "bad"
    recipe.mkdir()
    (recipe / "build.yaml").write_text(
        "name: bad\nversion: '1'\ncategories: [astrology]\n"
        "build:\n  kind: neurodocker\n  base-image: debian:bookworm\n  pkg-manager: apt\n"
        "  directives:\n    - install: curl\n    - template: {name: fsl, version: '0.1'}\n"
    )
    proc = run_cli(["recipe", "check", str(recipe)], home)
    assert_one_line_error(proc, "2 problem(s)")
    lines = proc.stderr.splitlines()
    assert any(f"{recipe}/build.yaml: categories: " in line for line in lines), proc.stderr
    assert any(
        f"{recipe}/build.yaml: build.directives[1].template.version: " in line for line in lines
    ), proc.stderr


def test_render_with_an_unknown_option_is_one_line(home: Path) -> None:
    proc = run_cli(["recipe", "render", "dcm2niix", "--option", "gpu=true"], home)
    assert_one_line_error(proc, "unknown option")
