"""Damaged trees and stores (issue 17): a truncated binary, a flipped byte, a broken image.json
or a corrupt store blob is found — at install from a tree, before a blob is reused, by
``neurodesk verify`` — and never used; ``gc`` drops corrupt and hard-linked fetch-cache copies."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from neurodesk.image.oci import OCILayout
from neurodesk.paths import Paths
from neurodesk.store import ImageRecord, Store
from tests.conftest import assert_one_line_error, run_cli
from tests.integration.distribution_helpers import store_digests_ok, tiny_layout

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, ImageRecord]:
    """A layout, and a tree with the image published from a store."""
    base = tmp_path_factory.mktemp("corrupt")
    layout = tiny_layout(base / "layout", name="brittle", payload=64 * 1024)
    home = base / "home"
    record = Store(Paths(home).store).import_layout(OCILayout(layout), "brittle", "1.0", "20260101")
    tree = base / "tree"
    proc = run_cli(["publish", "brittle", "--tree", str(tree)], home)
    assert proc.returncode == 0, proc.stderr
    return layout, tree, record


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))


def break_json(path: Path) -> None:
    path.write_text('{"name": "brittle", "version": ')


DAMAGE: list[tuple[str, str, Callable[[Path], None]]] = [
    ("truncated binary", "brittle_1.0_20260101.simg/usr/bin/tinytool", truncate),
    ("flipped byte", "brittle_1.0_20260101.simg/opt/tiny/data.bin", flip),
    ("broken image.json", "image.json", break_json),
]


def site_config(home: Path, *trees: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    mirrors = [str(t) for t in trees]
    config = {"sources": [{"name": "site", "kind": "tree", "mirrors": mirrors}]}
    (home / "config.yaml").write_text(json.dumps(config))


@pytest.mark.parametrize(("what", "rel", "damage"), DAMAGE, ids=[d[0] for d in DAMAGE])
def test_a_damaged_tree_is_refused_at_install_and_found_by_verify(
    published: tuple[Path, Path, ImageRecord],
    tmp_path: Path,
    what: str,
    rel: str,
    damage: Callable[[Path], None],
) -> None:
    _layout, good_tree, record = published
    bad_tree = tmp_path / "bad"
    shutil.copytree(good_tree, bad_tree, symlinks=True)
    damage(bad_tree / "containers" / record.id / rel)
    name = rel.rsplit("/", 1)[-1]

    alone = tmp_path / "alone"
    site_config(alone, bad_tree)
    proc = run_cli(["install", "brittle"], alone)
    assert_one_line_error(proc, name, "differ")
    assert not (Paths(alone).store / "refs" / "brittle").exists()

    both = tmp_path / "both"
    site_config(both, bad_tree, good_tree)
    proc = run_cli(["install", "brittle", "--json"], both)
    assert proc.returncode == 0, proc.stderr
    used = Store(Paths(both).store).resolve("brittle")
    assert str(used.rootfs).startswith(str(good_tree))
    check = json.loads(Store(Paths(both).store).verification_path(used).read_text())
    assert check["manifest"] and check["checked"]  # verified once, at install, and recorded

    listing = run_cli(["verify", "--tree", str(bad_tree)], alone)
    assert_one_line_error(listing, "difference")
    assert name in listing.stdout
    assert run_cli(["verify", "brittle"], both).returncode == 0


def test_a_tree_damaged_after_install_is_reported_by_verify(
    published: tuple[Path, Path, ImageRecord], tmp_path: Path
) -> None:
    _layout, good_tree, record = published
    tree = tmp_path / "tree"
    shutil.copytree(good_tree, tree, symlinks=True)
    home = tmp_path / "home"
    site_config(home, tree)
    assert run_cli(["install", "brittle"], home).returncode == 0
    truncate(tree / "containers" / record.id / f"{record.id}.simg" / "usr/bin/tinytool")
    proc = run_cli(["verify", "brittle", "--json"], home)
    assert_one_line_error(proc, "difference")
    (result,) = json.loads(proc.stdout)
    assert result["problems"] == [
        f"{record.id}.simg/usr/bin/tinytool: 13 bytes, expected 27 (truncated?)"
    ]


def test_a_corrupt_store_blob_is_replaced_from_the_source(
    published: tuple[Path, Path, ImageRecord], tmp_path: Path
) -> None:
    layout, _tree, record = published
    home = tmp_path / "home"
    proc = run_cli(["install", "brittle", "--from", str(layout)], home)
    assert proc.returncode == 0, proc.stderr
    store = Store(Paths(home).store)
    manifest = json.loads(store.blob_path(record.digest).read_bytes())
    layer = store.blob_path(max(manifest["layers"], key=lambda d: d["size"])["digest"])
    flip(layer)
    data = store.resolve("brittle").rootfs / "opt/tiny/data.bin"
    flip(data)

    proc = run_cli(["verify", "brittle"], home)
    assert_one_line_error(proc, "difference")
    assert layer.name in proc.stdout and "opt/tiny/data.bin: content differs" in proc.stdout

    # A failed pull left a hard-linked copy of the (now corrupt) blob in the fetch cache.
    cached = Paths(home).cache / "fetch" / ("0" * 64) / "blobs" / "sha256" / layer.name
    cached.parent.mkdir(parents=True)
    os.link(layer, cached)

    assert run_cli(["rm", "brittle"], home).returncode == 0
    proc = run_cli(["install", "brittle", "--from", str(layout), "--json"], home)
    assert proc.returncode == 0, proc.stderr
    assert store_digests_ok(Paths(home).store) == []  # detected before reuse, and replaced
    assert run_cli(["verify", "brittle"], home).returncode == 0

    proc = run_cli(["gc", "--json"], home)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["cache"] >= 1
    assert not cached.exists()
    assert run_cli(["verify", "--all"], home).returncode == 0
