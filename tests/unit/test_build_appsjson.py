"""The upstream catalog formats: release files, apps.json and log.txt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neurodesk.catalog.appsjson import (
    AppsJson,
    CatalogFiles,
    Container,
    Release,
    app_key,
    containers,
    dump_release,
    load_apps_json,
    merge_release,
    parse_log,
    release_file_version,
    render_log,
    split_app_key,
    version_key,
)
from neurodesk.errors import ValidationError

# Shapes copied from upstream's files (neurocontainers releases/, neurocommand apps.json).
UPSTREAM_RELEASE = """{
  "apps": {
    "afni 24.3.00": {
      "version": "20241003",
      "exec": ""
    },
    "sumaGUI-afni 24.3.00": {
      "version": "20241003",
      "exec": "suma"
    }
  },
  "categories": [
    "functional imaging"
  ]
}"""


def test_release_for_build_matches_upstream_bytes() -> None:
    release = Release.for_build(
        "afni", "24.3.00", "20241003", ["functional imaging"], [("sumaGUI", "suma")]
    )
    assert dump_release(release) == UPSTREAM_RELEASE
    assert Release.model_validate_json(UPSTREAM_RELEASE) == release


def test_app_keys_round_trip() -> None:
    assert app_key("mrtrix3", "3.0.4") == "mrtrix3 3.0.4"
    assert app_key("mrtrix3", "3.0.4", "mrviewGUI") == "mrviewGUI-mrtrix3 3.0.4"
    assert split_app_key("mrviewGUI-mrtrix3 3.0.4") == ("mrviewGUI", "mrtrix3", "3.0.4")
    assert split_app_key("dcm2niix v1.0.20240202") == (None, "dcm2niix", "v1.0.20240202")
    # A dash inside a plain name is not a GUI prefix.
    assert split_app_key("code-server 4.1") == (None, "code-server", "4.1")


def test_version_key_is_natural() -> None:
    versions = ["1.10", "1.9", "1.9.1", "v1.0.2"]
    assert sorted(versions, key=version_key) == ["1.9", "1.9.1", "1.10", "v1.0.2"]


def test_merge_orders_versions_and_replaces_a_rebuilt_version() -> None:
    apps = AppsJson({})
    apps = merge_release(apps, "mrtrix3", Release.for_build("mrtrix3", "3.0.10", "20240101", ["a"]))
    apps = merge_release(
        apps,
        "mrtrix3",
        Release.for_build("mrtrix3", "3.0.9", "20230101", ["b"], [("mrviewGUI", "mrview")]),
    )
    assert list(apps.root["mrtrix3"].apps) == [
        "mrtrix3 3.0.9",
        "mrviewGUI-mrtrix3 3.0.9",
        "mrtrix3 3.0.10",
    ]
    assert apps.root["mrtrix3"].categories == ["b"]
    # Rebuilding 3.0.9 without its GUI app drops the stale GUI entry.
    apps = merge_release(apps, "mrtrix3", Release.for_build("mrtrix3", "3.0.9", "20240202", ["b"]))
    assert apps.root["mrtrix3"].apps["mrtrix3 3.0.9"].version == "20240202"
    assert "mrviewGUI-mrtrix3 3.0.9" not in apps.root["mrtrix3"].apps


def test_log_round_trip_matches_upstream_lines() -> None:
    text = (
        "afni_21.2.00_20210714 categories:functional imaging,\nfsl_6.0.3_20200905 categories:a,b,\n"
    )
    parsed = parse_log(text)
    assert parsed[0] == Container("afni", "21.2.00", "20210714", ("functional imaging",))
    assert parsed[1].id == "fsl_6.0.3_20200905" and parsed[1].categories == ("a", "b")
    assert render_log(parsed) == text


def test_parse_log_rejects_bad_lines() -> None:
    with pytest.raises(ValidationError, match=r"log\.txt:1"):
        parse_log("nonsense\n")
    with pytest.raises(ValidationError, match=r"log\.txt:2"):
        parse_log("a_1_20240101 categories:x,\na_1_2024 categories:x,\n")


def test_catalog_files_regenerate(tmp_path: Path) -> None:
    files = CatalogFiles(tmp_path)
    files.write_release(
        "mrtrix3",
        "3.0.4",
        Release.for_build(
            "mrtrix3", "3.0.4", "20240301", ["diffusion imaging"], [("mrviewGUI", "mrview")]
        ),
    )
    files.write_release(
        "dcm2niix",
        "1.0.20220720",
        Release.for_build("dcm2niix", "1.0.20220720", "20240302", ["data organisation"]),
    )
    assert files.release_path("dcm2niix", "1.0.20220720").is_file()
    apps = files.regenerate()
    assert list(apps.root) == ["dcm2niix", "mrtrix3"]
    on_disk = json.loads(files.apps_json.read_text())
    assert on_disk["mrtrix3"] == {
        "apps": {
            "mrtrix3 3.0.4": {"version": "20240301", "exec": ""},
            "mrviewGUI-mrtrix3 3.0.4": {"version": "20240301", "exec": "mrview"},
        },
        "categories": ["diffusion imaging"],
    }
    assert files.log_txt.read_text() == (
        "dcm2niix_1.0.20220720_20240302 categories:data organisation,\n"
        "mrtrix3_3.0.4_20240301 categories:diffusion imaging,\n"
    )
    assert load_apps_json(files.apps_json) == apps
    assert [c.id for c in containers(apps)] == [c.id for c in parse_log(files.log_txt.read_text())]
    # No temporary files left behind by the atomic writes.
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]


def test_newest_build_sets_menu_categories(tmp_path: Path) -> None:
    files = CatalogFiles(tmp_path)
    files.write_release("x", "2.0", Release.for_build("x", "2.0", "20240101", ["new"]))
    files.write_release("x", "1.0", Release.for_build("x", "1.0", "20230101", ["old"]))
    assert files.build_apps_json().root["x"].categories == ["new"]


def test_bad_files_are_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "apps.json"
    bad.write_text('{"x": {"apps": {"x 1": {"version": "yesterday"}}}}')
    with pytest.raises(ValidationError, match=r"x\.apps\.x 1\.version"):
        load_apps_json(bad)
    bad.write_text("{nope")
    with pytest.raises(ValidationError, match=r"apps\.json:1"):
        load_apps_json(bad)
    assert load_apps_json(tmp_path / "missing.json").root == {}


def test_release_in_todays_upstream_form_arm64_and_variants() -> None:
    arm = Release.for_build(
        "tool", "2.0", "20260101", ["statistics"], [("viewGUI", "view")],
        apptainer_args=["--nv"], architecture="aarch64", show_in_menu=False,
    )  # fmt: skip
    data = json.loads(dump_release(arm))
    assert data["architecture"] == "aarch64" and data["show_in_menu"] is False
    assert data["apps"]["tool 2.0 arm64"] == {
        "version": "20260101", "exec": "", "apptainer_args": ["--nv"],
        "architecture": "aarch64", "image": "tool_2.0_arm64",
    }  # fmt: skip
    assert data["apps"]["viewGUI-tool 2.0 arm64"]["exec"] == "view"
    assert release_file_version("2.0", "aarch64", None) == "2.0-arm64"
    gpu = json.loads(
        dump_release(
            Release.for_build("tool_gpu", "2.0", "20260101", ["statistics"],
                              apptainer_args=[], architecture="x86_64", variant="gpu")
        )
    )  # fmt: skip
    assert gpu["variant"] == "gpu" and gpu["architecture"] == "x86_64"
    assert gpu["apps"] == {
        "tool_gpu 2.0": {"version": "20260101", "exec": "", "apptainer_args": []}
    }
    assert release_file_version("2.0", "x86_64", "gpu") == "2.0"
    # A file in that form reads back unchanged.
    assert dump_release(Release.model_validate(data)) == dump_release(arm)
