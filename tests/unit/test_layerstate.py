"""Per-layer state: an image sharing its first layers with a stored one is made from that
state (only the new layers are read), gives the very tree a full unpack gives, and gc keeps
exactly the states some image names."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from neurodesk.image.layers import unpack_layers
from neurodesk.image.oci import OCILayout
from neurodesk.store import Store
from neurodesk.store.filemanifest import MANIFEST_NAME, compare, load_manifest
from neurodesk.store.layerstate import LayerStates, chain_ids
from neurodesk.store.maintenance import du, gc
from tests.unit.ocihelp import write_layout

BASE = {"etc/os": b"bookworm\n", "usr/lib/big.so": b"x" * 20_000, "usr/bin/old": b"old"}
TOOL = {"opt/tool/bin/tool.sh": b"#!/bin/sh\necho 1\n", "usr/bin/.wh.old": b""}


@pytest.fixture(autouse=True)
def every_layer_counts(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """These layers are tiny: treat them as the large layers states are kept for."""
    if "small_layers" not in request.node.name:
        monkeypatch.setattr("neurodesk.store.store.SMALL_LAYER", 0)


def env_layer(value: str) -> dict[str, bytes]:
    return {"etc/profile.d/env.sh": f"export BENCH={value}\n".encode()}


def import_image(store: Store, layout: Path, version: str) -> tuple[list[str], Path]:
    said: list[str] = []
    record = store.import_layout(OCILayout(layout), "tool", version, "20260101", said.append)
    return said, record.image_dir


def test_chain_ids_name_prefixes_by_blob_digest() -> None:
    a, b, c = (f"sha256:{x * 64}" for x in "abc")
    chains = chain_ids([a, b, c])
    assert chains[0] == a
    assert chains[1] == "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    assert chain_ids([a, b]) == chains[:2]
    assert chain_ids([a, c])[1] != chains[1]


def test_rebuild_reads_only_new_layers_and_matches_a_full_unpack(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    first = write_layout(tmp_path / "one", [BASE, TOOL, env_layer("1")])
    said, _ = import_image(store, first, "1")
    assert "unpacking 3 of 3 layer(s)" in said

    second = write_layout(tmp_path / "two", [BASE, TOOL, env_layer("2"), {"opt/x": b"x"}])
    said, image_dir = import_image(store, second, "2")
    assert "unpacking 2 of 4 layer(s) on the stored state of the first 2" in said

    # The same tree (files, modes, links, whiteouts applied) as unpacking every layer afresh.
    manifest = OCILayout(second).manifest()
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    unpack_layers([second / "blobs/sha256" / d.hex for d in manifest.layers], fresh)
    expected = load_manifest(image_dir / MANIFEST_NAME)
    assert compare(fresh, expected) == []
    assert compare(image_dir / "rootfs", expected) == []
    rootfs = image_dir / "rootfs"
    assert not (rootfs / "usr/bin/old").exists()  # the whiteout of the reused layer held
    assert (rootfs / "etc/profile.d/env.sh").read_bytes() == b"export BENCH=2\n"
    # Files of the reused layers are the stored inodes, not new copies.
    one = store.resolve("tool/1").rootfs
    assert (one / "usr/lib/big.so").stat().st_ino == (rootfs / "usr/lib/big.so").stat().st_ino


def test_an_image_extending_another_starts_from_its_tree(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    import_image(store, write_layout(tmp_path / "base", [BASE]), "base")
    said, image_dir = import_image(store, write_layout(tmp_path / "t", [BASE, TOOL]), "t")
    assert "unpacking 1 of 2 layer(s) on the stored state of the first 1" in said
    assert (image_dir / "rootfs/opt/tool/bin/tool.sh").stat().st_mode & 0o777 == 0o755


def test_gc_keeps_the_states_images_name_and_drops_the_rest(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    import_image(store, write_layout(tmp_path / "one", [BASE, TOOL, env_layer("1")]), "1")
    other = [BASE, {"other": b"o"}, env_layer("2")]
    import_image(store, write_layout(tmp_path / "two", other), "2")
    states = LayerStates(store.root)
    before = {p.name for p in states.root.iterdir()}
    store.remove("tool/1")
    report = gc(store)
    after = {p.name for p in states.root.iterdir()}
    assert report.layers == len(before - after) == 1  # (BASE, TOOL) only image 1 used
    assert after == states.used_chains() & before
    # The survivor still rebuilds from its states, and its files are all still there.
    said, _ = import_image(store, write_layout(tmp_path / "3", [BASE, {"other": b"o"}]), "3")
    assert "unpacking 0 of 2 layer(s) on the stored state of the first 2" in said
    record = store.resolve("tool/2")
    assert compare(record.rootfs, load_manifest(record.image_dir / MANIFEST_NAME)) == []


def test_du_reports_the_store_footprint_against_the_unpacked_images(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    import_image(store, write_layout(tmp_path / "one", [BASE, TOOL]), "1")
    report = du(store)
    assert report.unpacked > 0 and report.store >= report.unpacked
    data = report.to_json()
    assert data["footprint_ratio"] == round(report.store / report.unpacked, 3)
    assert json.dumps(data)


def test_small_layers_keep_their_blobs_and_get_no_state_of_their_own(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    big = {"usr/lib/huge.so": bytes(range(256)) * 8192}  # 2 MB
    import_image(store, write_layout(tmp_path / "one", [big, TOOL, env_layer("1")]), "1")
    states = LayerStates(store.root)
    assert len(list(states.root.iterdir())) == 1  # after the large layer only
    manifest = OCILayout(tmp_path / "one").manifest()
    kept = [store.blob_path(d.digest).is_file() for d in manifest.layers]
    assert kept == [True, True, True]  # no tar-split record here: nothing is dropped
    said, image_dir = import_image(
        store, write_layout(tmp_path / "two", [big, TOOL, env_layer("2")]), "2"
    )
    assert "unpacking 2 of 3 layer(s) on the stored state of the first 1" in said
    assert compare(image_dir / "rootfs", load_manifest(image_dir / MANIFEST_NAME)) == []
