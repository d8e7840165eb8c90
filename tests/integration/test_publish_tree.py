"""``neurodesk publish --tree``: the CVMFS layout, its transactions, and using it in place."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from neurodesk.catalog.appsjson import CatalogFiles, parse_log
from neurodesk.image.oci import OCILayout
from neurodesk.paths import Paths
from neurodesk.publish.tree import publish_tree
from neurodesk.store import ImageRecord, Store
from tests.conftest import assert_one_line_error, run_cli
from tests.integration.distribution_helpers import tiny_layout

pytestmark = pytest.mark.integration


def tiny(
    tmp_path: Path, name: str = "treetool", date: str = "20260101"
) -> tuple[Path, ImageRecord]:
    home = tmp_path / "home"
    layout = tiny_layout(tmp_path / f"layout-{date}", name=name)
    record = Store(Paths(home).store).import_layout(OCILayout(layout), name, "1.0", date)
    return home, record


def test_tree_layout_and_catalog(tmp_path: Path) -> None:
    home, record = tiny(tmp_path)
    tree = tmp_path / "tree"
    proc = run_cli(["publish", "treetool", "--tree", str(tree), "--json"], home)
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)
    container = tree / "containers" / record.id
    assert result["container"] == str(container)
    assert (container / f"{record.id}.simg" / "opt/tiny/data.bin").is_file()
    assert (container / "commands.txt").read_text() == "tinytool\n"
    wrapper = container / "tinytool"
    assert os.access(wrapper, os.X_OK)
    assert f"{record.id}.simg" in wrapper.read_text() and str(tree) not in wrapper.read_text()
    module = tree / "neurodesk-modules" / "programming" / "treetool" / "1.0.lua"
    # install's one module renderer: the tree's root found from the module's own location
    assert f'prepend_path("PATH", pathJoin(prefix, "containers/{record.id}"))' in module.read_text()
    assert (tree / "log.txt").read_text() == f"{record.id} categories:programming,\n"
    apps = json.loads((tree / "apps.json").read_text())
    assert apps == {
        "treetool": {
            "apps": {"treetool 1.0": {"version": "20260101", "exec": ""}},
            "categories": ["programming"],
        }
    }
    again = run_cli(["publish", "treetool", "--tree", str(tree), "--json"], home)
    assert json.loads(again.stdout)[0]["skipped"] is True
    # The tree is a source: the catalog sees it, install uses its sandbox in place.
    other = tmp_path / "other"
    other.mkdir()
    config = {"sources": [{"name": "site", "kind": "tree", "mirrors": [str(tree)]}]}
    (other / "config.yaml").write_text(json.dumps(config))
    info = run_cli(["info", "treetool", "--json"], other)
    assert info.returncode == 0, info.stderr
    data = json.loads(info.stdout)
    assert data["sources"] == ["site"] and data["commands"] == ["tinytool"]
    assert data["licenses"] == ["MIT"]
    assert data["offers"][0]["size"] > 256 * 1024  # the sandbox's bytes
    installed = run_cli(["install", "treetool", "--json"], other)
    assert installed.returncode == 0, installed.stderr
    used = Store(Paths(other).store).resolve("treetool")
    assert used.rootfs == container / f"{record.id}.simg"
    assert not (Paths(other).store / "images").exists() or not any(
        (Paths(other).store / "images").iterdir()
    )


def test_interrupted_publish_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _home, first = tiny(tmp_path)
    tree = tmp_path / "tree"
    publish_tree(first, tree)
    _home, second = tiny(tmp_path, date="20260202")
    before = (tree / "log.txt").read_text(), (tree / "apps.json").read_text()

    def boom(self: CatalogFiles) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(CatalogFiles, "regenerate", boom)
    with pytest.raises(OSError):
        publish_tree(second, tree)
    monkeypatch.undo()
    # Rolled back: the new container is gone, the catalog and the old release are as before.
    assert not (tree / "containers" / second.id).exists()
    assert ((tree / "log.txt").read_text(), (tree / "apps.json").read_text()) == before
    release = json.loads((tree / "releases" / "treetool" / "1.0.json").read_text())
    assert release["apps"]["treetool 1.0"]["version"] == "20260101"
    assert (tree / "containers" / first.id / "commands.txt").is_file()
    # The catalog could not be rewritten during the rollback either: the journal stays for the
    # next publish, which finishes the rollback and then publishes.
    publish_tree(second, tree)
    assert [c.id for c in parse_log((tree / "log.txt").read_text())] == [second.id]
    assert not any((tree / ".neurodesk-staging").iterdir())


def test_leftover_staging_of_a_killed_publish_is_rolled_back(tmp_path: Path) -> None:
    home, record = tiny(tmp_path)
    tree = tmp_path / "tree"
    # What kill -9 leaves after the container was renamed into place but before the commit.
    txn = tree / ".neurodesk-staging" / "deadbeef"
    txn.mkdir(parents=True)
    orphan = tree / "containers" / record.id / f"{record.id}.simg"
    orphan.mkdir(parents=True)
    (txn / "journal.json").write_text(
        json.dumps({"id": record.id, "created": [f"containers/{record.id}"], "replaced": []})
    )
    (tree / ".neurodesk-staging" / "half-copied").mkdir()
    proc = run_cli(["publish", "treetool", "--tree", str(tree)], home)
    assert proc.returncode == 0, proc.stderr
    assert not any((tree / ".neurodesk-staging").iterdir())
    assert (tree / "containers" / record.id / "commands.txt").is_file()


def test_tree_publish_of_a_real_tool_runs_from_the_tree(
    dcm2niix_image: ImageRecord, nd_home: Path, tmp_path: Path
) -> None:
    tree = tmp_path / "cvmfs"
    proc = run_cli(["publish", "dcm2niix", "--tree", str(tree)], nd_home)
    assert proc.returncode == 0, proc.stderr
    container = tree / "containers" / dcm2niix_image.id
    out = subprocess.run(
        [str(container / "dcm2niix"), "-h"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0 and "dcm2niix" in out.stdout, out.stderr
    modules = sorted((tree / "neurodesk-modules").rglob("*.lua"))
    assert modules and all(dcm2niix_image.version in m.name for m in modules)
    lmod = Path("/usr/share/lmod/lmod/init/bash")
    if lmod.is_file():
        category = modules[0].parent.parent
        script = (
            f". {lmod} && module use {category} && "
            f"module load dcm2niix/{dcm2niix_image.version} && dcm2niix -h"
        )
        shell = subprocess.run(
            ["bash", "-c", script], capture_output=True, text=True, check=False, cwd=tmp_path
        )
        assert shell.returncode == 0 and "dcm2niix" in shell.stdout, shell.stderr


def test_bad_tree_arguments(tmp_path: Path) -> None:
    home, _record = tiny(tmp_path)
    assert_one_line_error(
        run_cli(["publish", "nosuch", "--tree", str(tmp_path / "t")], home), "nosuch"
    )
    assert not (tmp_path / "t" / "containers").exists()


def test_tree_with_sifs_beside_the_sandboxes(tmp_path: Path) -> None:
    """``--sif`` writes <id>.sif and its .sha256 into the container directory (outside
    files.json: an install from the tree still verifies), also for a container published
    before without them."""
    import hashlib

    from neurodesk.image.squashfs import sif_root_partition

    home, record = tiny(tmp_path)
    tree = tmp_path / "tree"
    assert run_cli(["publish", "treetool", "--tree", str(tree)], home).returncode == 0
    container = tree / "containers" / record.id
    assert not (container / f"{record.id}.sif").exists()
    proc = run_cli(["publish", "treetool", "--tree", str(tree), "--sif"], home)
    assert proc.returncode == 0, proc.stderr
    sif = container / f"{record.id}.sif"
    assert sif_root_partition(sif).length > 0
    sidecar = (container / f"{record.id}.sif.sha256").read_text().split()
    assert sidecar == [hashlib.sha256(sif.read_bytes()).hexdigest(), sif.name]
    assert sif.name not in (container / "files.json").read_text()
    assert not list(container.glob("*.part"))
    other = tmp_path / "other"
    other.mkdir()
    config = {"sources": [{"name": "site", "kind": "tree", "mirrors": [str(tree)]}]}
    (other / "config.yaml").write_text(json.dumps(config))
    installed = run_cli(["install", "treetool"], other)
    assert installed.returncode == 0, installed.stderr
    # A first publish with --sif writes it in the same transaction as the sandbox.
    fresh = tmp_path / "fresh"
    proc = run_cli(["publish", "treetool", "--tree", str(fresh), "--sif"], home)
    assert proc.returncode == 0, proc.stderr
    assert (fresh / "containers" / record.id / f"{record.id}.sif.sha256").is_file()
