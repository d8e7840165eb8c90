"""``neurodesk cite``: each tool's recipe citation, its container, Neurodesk; text, BibTeX, CFF."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from neurodesk.image.oci import OCILayout
from neurodesk.paths import Paths
from neurodesk.store import ImageRecord, Store
from tests.conftest import assert_one_line_error, run_cli
from tests.unit.ocihelp import write_layout

CITATION = (
    "Li X, Morgan PS, Ashburner J, Smith J, Rorden C (2016) The first step for neuroimaging "
    "data analysis: DICOM to NIfTI conversion. J Neurosci Methods 264:47-56."
)
NEURODESK_DOI = "10.1038/s41592-023-02145-x"


def image(home: Path, tmp_path: Path, name: str, recipe: str) -> ImageRecord:
    layout = write_layout(
        tmp_path / f"layout-{name}",
        [{"build.yaml": recipe.encode(), "usr/bin/tool": b"#!/bin/sh\n"}],
    )
    return Store(Paths(home).store).import_layout(OCILayout(layout), name, "1.0", "20260101")


@pytest.fixture
def cited(home: Path, tmp_path: Path) -> ImageRecord:
    recipe = {
        "name": "conv",
        "version": "1.0",
        "copyright": [{"license": "BSD-3-Clause", "url": "https://example.org/l"}],
        "structured_readme": {
            "description": "converts",
            "citation": CITATION,
            "documentation": "https://example.org/conv",
        },
    }
    return image(home, tmp_path, "conv", yaml.safe_dump(recipe))


def test_text_names_citation_container_digest_and_neurodesk(home: Path, cited: ImageRecord) -> None:
    proc = run_cli(["cite", "conv"], home)
    assert proc.returncode == 0, proc.stderr
    assert "J Neurosci Methods 264:47-56" in proc.stdout
    assert "conv_1.0:20260101" in proc.stdout
    assert cited.digest in proc.stdout
    assert f"conv_1.0_20260101@{cited.digest}" in proc.stdout  # the catalog id + digest
    assert NEURODESK_DOI in proc.stdout


def test_bibtex_has_one_entry_per_citation_container_and_paper(
    home: Path, cited: ImageRecord
) -> None:
    proc = run_cli(["cite", "conv", "--format", "bibtex"], home)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n@") + proc.stdout.startswith("@") == 3
    assert "@software{conv_1_0_20260101_container," in proc.stdout
    assert f"doi = {{{NEURODESK_DOI}}}" in proc.stdout
    assert "J Neurosci Methods" in proc.stdout


def test_cff_for_a_project_from_a_lock_is_valid(
    home: Path, cited: ImageRecord, tmp_path: Path
) -> None:
    lockfile = tmp_path / "neurodesk.lock"
    assert run_cli(["lock", "conv", "-o", str(lockfile), "--local"], home).returncode == 0
    out = tmp_path / "CITATION.cff"
    proc = run_cli(["cite", "--lock", str(lockfile), "--format", "cff", "--title", "My study",
                    "--author", "Doe, Jane", "-o", str(out)], home)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = yaml.safe_load(out.read_text())
    assert data["cff-version"] == "1.2.0" and data["title"] == "My study"
    assert data["authors"] == [{"family-names": "Doe", "given-names": "Jane"}]
    tool, paper = data["references"]
    assert tool["version"] == "1.0" and tool["license"] == "BSD-3-Clause"
    assert tool["identifiers"][0]["value"].endswith(cited.digest)
    assert CITATION in tool["notes"]
    assert paper["doi"] == NEURODESK_DOI
    cffconvert = pytest.importorskip("cffconvert", reason="cffconvert not installed")
    cffconvert.Citation(out.read_text()).validate()  # raises when the file breaks the schema


def test_a_recipe_without_citation_falls_back_and_says_so(home: Path, tmp_path: Path) -> None:
    image(home, tmp_path, "plain", "name: plain\nversion: '1.0'\n")
    recipes = tmp_path / "recipes"
    (recipes / "plain").mkdir(parents=True)
    (recipes / "plain" / "build.yaml").write_text(
        "name: plain\nversion: '1.0'\nstructured_readme: {citation: 'Plain et al. 2020'}\n"
    )
    proc = run_cli(["cite", "plain"], home, env={"NEURODESK_RECIPES": str(recipes)})
    assert "Plain et al. 2020" in proc.stdout  # from the shipped recipe
    (recipes / "plain" / "build.yaml").write_text("name: plain\nversion: '1.0'\n")
    proc = run_cli(["cite", "plain"], home, env={"NEURODESK_RECIPES": str(recipes)})
    assert proc.returncode == 0, proc.stderr
    assert "the recipe gives no citation" in proc.stdout
    assert NEURODESK_DOI in proc.stdout


def test_a_hostile_build_yaml_link_is_not_followed(home: Path, tmp_path: Path) -> None:
    record = image(home, tmp_path, "evil", "name: evil\n")
    secret = tmp_path / "secret.yaml"
    secret.write_text("structured_readme: {citation: 'HOST SECRET'}\n")
    target = record.rootfs / "build.yaml"
    target.chmod(0o644)
    target.unlink()
    target.symlink_to(secret)
    proc = run_cli(["cite", "evil"], home)
    assert proc.returncode == 0, proc.stderr
    assert "HOST SECRET" not in proc.stdout


def test_cite_errors_are_one_line(home: Path, tmp_path: Path) -> None:
    assert_one_line_error(run_cli(["cite"], home), "no tool named")
    assert_one_line_error(run_cli(["cite", "nosuch"], home), "no image named 'nosuch'")
    bad = tmp_path / "x.lock"
    bad.write_text(json.dumps({"tools": []}))
    assert_one_line_error(run_cli(["cite", "--lock", str(bad)], home), "not a neurodesk lock")
    assert_one_line_error(run_cli(["cite", "--batch", "nosuch"], home), "no batch 'nosuch'")
    assert_one_line_error(run_cli(["cite", "a", "--batch", "b"], home), "not several")
