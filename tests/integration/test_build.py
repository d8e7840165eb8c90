"""Builds with real buildah/podman, tests run inside the images with bwrap, release files.

All builds share the session's NEURODESK_HOME (``nd_home``): the debootstrap base and cached
layers are made once. Small recipes only (each a few Debian packages).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from neurodesk.build.buildah import BuildahBuilder
from neurodesk.build.podman import PodmanBuilder
from neurodesk.paths import Paths
from neurodesk.store import ImageRecord, Store
from tests.conftest import REPO, assert_one_line_error, run_cli
from tests.integration.conftest import need

pytestmark = pytest.mark.integration

# Three shipped recipes that build from a few Debian packages each.
SHIPPED = ("dcm2niix", "gifti-bin", "nifti-bin")
OFFLINE = {"NEURODESK_OFFLINE": "1"}

DEPLOY_BROKEN = """\
name: brokendeploy
version: "1.0"
build:
  kind: neurodocker
  base-image: ubuntu:22.04
  pkg-manager: apt
  add-default-template: false
  directives:
    - run:
        - printf '#!/usr/bin/nosuchinterp\\necho hi\\n' > /usr/local/bin/badscript
        - chmod +x /usr/local/bin/badscript
        - printf '#!/bin/sh\\necho ok\\n' > /usr/local/bin/goodscript
        - chmod +x /usr/local/bin/goodscript
        # cp needs libacl; the deploy check's own tools (sh, ldd, grep, sed, tr) do not
        - rm -f /lib/*/libacl.so.1* /usr/lib/*/libacl.so.1*
deploy:
  bins: [badscript, goodscript, cp, nosuchcommand]
"""

TESTS_OF_BROKEN = """\
tests:
  - name: writes in its scratch directory
    script: |
      echo data > here.txt
      test "$(cat "$HOME/here.txt")" = data
      test "$TMPDIR" = "$PWD"
  - name: fails with output
    script: |
      echo something went wrong
      exit 4
  - name: prep that fails
    prep: exit 1
    script: "true"
  - name: needs a human
    manual: true
    script: "false"
"""

FAILING = """\
name: failing
version: "2.0"
build:
  kind: neurodocker
  base-image: debian:bookworm
  pkg-manager: apt
  add-default-template: false
  directives:
    - run:
        - echo first step works
    - run:
        - echo about to fail
        - exit 3
deploy:
  bins: [sh]
"""


def buildah_images(home: Path) -> str:
    b = BuildahBuilder(Paths(home))
    out = subprocess.run(
        [*b.global_args, "images", "--format", "{{.Name}}:{{.Tag}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


def buildah_containers(home: Path) -> str:
    b = BuildahBuilder(Paths(home))
    out = subprocess.run(
        [*b.global_args, "containers", "--quiet"], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_recipe_builds_and_passes_its_tests(
    name: str, nd_home: Path, dcm2niix_image: ImageRecord
) -> None:
    if not (REPO / "recipes" / name / "build.yaml").is_file():
        pytest.skip(f"recipe {name} is not in this checkout")
    proc = run_cli(["build", name, "--json"], nd_home, env=OFFLINE)
    assert proc.returncode == 0, proc.stderr
    built = json.loads(proc.stdout)
    labels = built["labels"]
    assert labels["org.opencontainers.image.title"] == name
    assert labels["org.opencontainers.image.version"] == built["version"]
    assert labels["org.opencontainers.image.created"] == built["builddate"]
    assert labels["org.neurodesk.recipe.digest"].startswith("sha256:")
    assert labels["org.neurodesk.builder"].startswith("buildah ")
    assert f"localhost/{name}_{built['version']}:{built['builddate']}" in buildah_images(nd_home)
    # Every build keeps its log; the release files follow upstream's formats.
    assert Path(built["log"]).is_file() and "STEP 1/" in Path(built["log"]).read_text()
    catalog = nd_home / "catalog"
    release = json.loads(Path(built["release"]).read_text())
    assert release["apps"][f"{name} {built['version']}"] == {
        "version": built["builddate"],
        "exec": "",
        "apptainer_args": [],
    }
    assert name in json.loads((catalog / "apps.json").read_text())
    log_line = f"{name}_{built['version']}_{built['builddate']} categories:"
    assert log_line in (catalog / "log.txt").read_text()

    proc = run_cli(["test", name, "--json"], nd_home)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["passed"], proc.stdout + proc.stderr
    names = [t["name"] for t in report["tests"]]
    assert len(names) >= 1 and all(t["status"] in ("pass", "skip") for t in report["tests"])


def test_unchanged_rebuild_is_cached_and_skips_the_export(
    nd_home: Path, dcm2niix_image: ImageRecord
) -> None:
    proc = run_cli(["build", "dcm2niix", "--json"], nd_home, env=OFFLINE)
    assert proc.returncode == 0, proc.stderr
    first = json.loads(proc.stdout)
    proc = run_cli(["build", "dcm2niix", "--json"], nd_home, env=OFFLINE)
    second = json.loads(proc.stdout)
    assert second["exported"] is False and second["digest"] == first["digest"]
    assert "Using cache" in Path(second["log"]).read_text()
    assert second["log"] != first["log"]  # each build keeps its own log


def test_failing_run_step_reports_and_registers_nothing(nd_home: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "failing" / "build.yaml"
    recipe.parent.mkdir()
    recipe.write_text(FAILING)
    proc = run_cli(["build", str(recipe)], nd_home, env=OFFLINE)
    assert_one_line_error(proc, "build failed at step", "exit 3", "full log:")
    (first,) = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert "build.directives[1].run" in first
    tail = [line for line in proc.stderr.splitlines() if line.startswith("  | ")]
    assert 0 < len(tail) <= 20 and any("about to fail" in line for line in tail)
    assert proc.returncode != 0
    assert not (nd_home / "store" / "refs" / "failing").exists()
    assert "failing_2.0" not in buildah_images(nd_home)
    assert buildah_containers(nd_home) == ""
    assert not (nd_home / "catalog" / "releases" / "failing").exists()


def test_deploy_check_fails_on_broken_commands_and_podman_builds(
    nd_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need("podman")
    recipe = tmp_path / "brokendeploy" / "build.yaml"
    recipe.parent.mkdir()
    recipe.write_text(DEPLOY_BROKEN)
    # An Ubuntu base with no reachable Ubuntu mirror: one line, offering --base-override.
    env = {**OFFLINE, "NEURODESK_UBUNTU_MIRROR": "http://127.0.0.1:9/ubuntu"}
    proc = run_cli(["build", str(recipe), "--builder", "podman"], nd_home, env=env)
    assert_one_line_error(proc, "no Ubuntu mirror is reachable", "--base-override debian:bookworm")

    proc = run_cli(
        ["build", str(recipe), "--builder", "podman", "--base-override", "debian:bookworm"],
        nd_home,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert PodmanBuilder(Paths(nd_home)).has_image("localhost/brokendeploy_1.0:" + today(nd_home))
    record = Store(nd_home / "store").resolve("brokendeploy")
    assert record.labels["org.neurodesk.builder"].startswith("podman ")
    assert record.labels["org.opencontainers.image.base.name"] == "debian:bookworm"

    (recipe.parent / "test.yaml").write_text(TESTS_OF_BROKEN)
    proc = run_cli(["test", str(recipe), "--json"], nd_home)
    assert proc.returncode == 1, proc.stderr
    scratch, failing, prep, manual, check = json.loads(proc.stdout)["tests"]
    assert scratch["status"] == "pass", scratch
    assert failing["status"] == "fail" and failing["detail"] == "exited 4"
    assert failing["output"] == ["something went wrong"]
    assert prep["status"] == "error" and prep["detail"] == "prep exited 1"
    assert manual["status"] == "skip"
    assert check["name"] == "test_deploy.sh" and check["status"] == "fail"
    assert (
        "/usr/local/bin/badscript: interpreter missing (/usr/bin/nosuchinterp)" in check["detail"]
    )
    assert "/usr/bin/cp: unresolved libraries (libacl.so.1" in check["detail"]
    assert "nosuchcommand: does not exist" in check["detail"]
    assert "goodscript" not in check["detail"]
    proc = run_cli(["test", str(recipe)], nd_home)
    assert proc.returncode == 1 and "FAIL" in proc.stdout
    assert "1 passed, 3 failed, 1 skipped" in proc.stdout


def today(home: Path) -> str:
    refs = sorted((home / "store" / "refs" / "brokendeploy" / "1.0").glob("*.json"))
    return refs[-1].stem


def test_base_registers_a_named_debian_base(nd_home: Path, dcm2niix_image: ImageRecord) -> None:
    proc = run_cli(["base", "debian:bookworm", "--json"], nd_home)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["source"] == "already present"
    # A name that does not say the suite, from the cached debootstrap tarball.
    proc = run_cli(["base", "mylab/base:1", "--suite", "bookworm", "--json"], nd_home)
    assert proc.returncode == 0, proc.stderr
    made = json.loads(proc.stdout)
    assert made["source"] == "debootstrap" and made["id"].startswith("sha256:")
    assert BuildahBuilder(Paths(nd_home)).has_image("mylab/base:1")
    proc = run_cli(["base", "mylab/other:1"], nd_home, env={"PATH": os.environ["PATH"]})
    assert_one_line_error(proc, "cannot tell which distribution", "--suite")
