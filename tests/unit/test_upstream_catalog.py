"""Upstream's catalog: 'neurodesk update' (conditional, validated, atomic), search/list/info
over it offline, upstream recipe facts, and one-line errors for bad catalogs (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neurodesk.catalog.upstream import CatalogError, cached_path, load_cached, parse, parse_bytes
from tests.conftest import assert_one_line_error, run_cli
from tests.httpserve import Fault, FileServer
from tests.upstream_data import count_containers, make_apps_json, write_apps_json


def serve_catalog(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    (root / "recipes" / "fsl").mkdir(parents=True)
    write_apps_json(root / "apps.json")
    (root / "recipes" / "fsl" / "build.yaml").write_text(
        """name: fsl
version: 6.0.7.4
copyright:
  - license: FSL-license
    url: https://fsl.fmrib.ox.ac.uk/fsl/docs/license.html
structured_readme:
  description: FSL is a comprehensive library of analysis tools for brain imaging data.
  citation: Jenkinson M, et al. FSL. NeuroImage 2012.
  documentation: https://fsl.fmrib.ox.ac.uk/fsl/docs/
"""
    )
    return root


def test_generated_catalog_is_upstream_sized_and_parses() -> None:
    data = make_apps_json()
    assert count_containers(data) >= 300
    catalog = parse(data, "apps.json")
    assert len(catalog.containers) == count_containers(data)
    fsl = catalog.by_name("fsl")
    assert [(c.version, c.builddate) for c in fsl][-1] == ("6.0.7.4", "20231025")
    assert ("fsleyesGUI", "fsleyes") in fsl[-1].gui_apps
    assert fsl[-1].id == "fsl_6.0.7.4_20231025"


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"<!DOCTYPE html><html>Sign in</html>", "HTML page"),
        (b'{"fsl": {"apps": {"fsl 6.0": ', "invalid JSON"),
        (b"[1, 2]", "top level"),
        (b'{"fsl": {"categories": []}}', "no 'apps'"),
        (b'{"fsl": {"apps": {}}}', "no containers"),
        (b'{"x": {"apps": {"x 1": {"version": "latest", "exec": ""}}}}', "no containers"),
    ],
)
def test_bad_catalogs_are_one_clear_problem(raw: bytes, needle: str) -> None:
    with pytest.raises(CatalogError) as caught:
        parse_bytes(raw, "apps.json")
    assert needle in caught.value.message


def test_undated_and_hostile_entries_are_left_out() -> None:
    data = make_apps_json(tools=10)
    data["mrtrix3"]["apps"]["mrtrix3src latest"] = {"version": "latest", "exec": ""}
    data["mrtrix3"]["apps"]["../../x 1"] = {"version": "20240101", "exec": ""}
    catalog = parse(data, "apps.json")
    assert not [c for c in catalog.containers if "/" in c.name or c.version == "latest"]
    assert len(catalog.skipped) == 2


def test_update_search_info_and_offline(tmp_path: Path, home: Path) -> None:
    root = serve_catalog(tmp_path)
    with FileServer(root) as server:
        (home / "config.yaml").write_text(f"recipe_url: {server.url}recipes/{{name}}/build.yaml\n")
        env = {"NEURODESK_CATALOG_URL": server.url + "apps.json"}
        fresh = run_cli(["search", "fsl"], home)
        assert "neurodesk update" in fresh.stderr and fresh.returncode == 0
        first = run_cli(["update"], home, env)
        assert first.returncode == 0, first.stderr
        assert "catalog updated:" in first.stdout and "containers of 110 tools" in first.stdout
        second = run_cli(["update", "--json"], home, env)
        assert json.loads(second.stdout)["changed"] is False
        assert server.requests[-1][2].get("If-None-Match")  # conditional request, answered 304
        info = run_cli(["info", "fsl", "--json"], home)
        assert info.returncode == 0, info.stderr
        data = json.loads(info.stdout)
        assert "6.0.7.4/20231025" in data["releases"]
        assert data["upstream_recipe"]["citation"].startswith("Jenkinson")
        assert data["upstream_recipe"]["licenses"] == ["FSL-license"]
        assert data["channels"][0] == "cvmfs"
    # Offline from here: the server is gone.
    offline = run_cli(["search", "tool00", "--json"], home)
    assert offline.returncode == 0, offline.stderr
    assert len(json.loads(offline.stdout)) >= 10
    assert "neurodesk update" not in offline.stderr
    listing = run_cli(["list", "--json"], home)
    assert len(json.loads(listing.stdout)) >= 110
    text = run_cli(["info", "fsl"], home)
    assert "Jenkinson" in text.stdout and "fsleyesGUI" in text.stdout  # from the cache
    down = run_cli(["update"], home, {"NEURODESK_CATALOG_URL": server.url + "apps.json"})
    assert_one_line_error(down, "could not reach 127.0.0.1", "cached catalog")


@pytest.mark.parametrize(
    ("fault", "needle"),
    [
        (Fault(html=True), "HTML page"),
        (Fault(status=404), "HTTP 404"),
        (Fault(status=500), "HTTP 500"),
        (Fault(truncate=True), "broke off"),
    ],
)
def test_a_bad_download_leaves_the_cached_catalog_alone(
    tmp_path: Path, home: Path, fault: Fault, needle: str
) -> None:
    root = serve_catalog(tmp_path)
    with FileServer(root) as server:
        env = {"NEURODESK_CATALOG_URL": server.url + "apps.json"}
        assert run_cli(["update"], home, env).returncode == 0
        before = cached_path(home).read_bytes()
        (root / "apps.json").write_text(json.dumps(make_apps_json(tools=20)))
        server.fault = fault
        proc = run_cli(["update"], home, env)
    assert_one_line_error(proc, needle)
    assert cached_path(home).read_bytes() == before
    assert not [p for p in cached_path(home).parent.iterdir() if p.name.startswith(".")]


def test_a_corrupt_cache_is_one_line(home: Path) -> None:
    cached_path(home).parent.mkdir(parents=True)
    cached_path(home).write_text('{"fsl": ')
    proc = run_cli(["search", "fsl"], home)
    assert_one_line_error(proc, "neurodesk update")
    assert load_cached(home.parent / "nothing") is None
