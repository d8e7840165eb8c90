"""Per-layer state with real builds (issue 16): a one-directive rebuild exports and unpacks only
the changed layers; the store drops layer blobs it can rebuild byte for byte, and publishing
still yields the same digests."""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from neurodesk.build.build import build_recipe
from neurodesk.image.layers import unpack_layers
from neurodesk.image.oci import Descriptor
from neurodesk.paths import Paths
from neurodesk.publish.registry import push_image
from neurodesk.recipe import find_recipe
from neurodesk.sources.pull import parse_manifest
from neurodesk.sources.registry import Registry, RegistryAddress
from neurodesk.store import ImageRecord, Store
from neurodesk.store.filemanifest import MANIFEST_NAME, compare, load_manifest
from neurodesk.store.maintenance import du
from neurodesk.store.store import SMALL_LAYER
from neurodesk.store.verify import verify_record
from tests.integration.conftest import need
from tests.integration.distribution_helpers import RegistryServer

pytestmark = pytest.mark.integration

# An earlier build date than the session image's, so 'dcm2niix' still resolves to that one.
OTHER_DATE = "20200101"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    need("docker-registry")
    server = RegistryServer(tmp_path_factory.mktemp("registry")).start()
    yield server
    server.stop()


def layers_of(store: Store, record: ImageRecord) -> list[Descriptor]:
    return parse_manifest(store.blob_path(record.digest).read_bytes())[1]


def test_built_layers_are_dropped_rebuilt_exactly_and_published_under_the_same_digest(
    dcm2niix_image: ImageRecord, nd_home: Path, registry: RegistryServer, tmp_path: Path
) -> None:
    store = Store(Paths(nd_home).store)
    layers = layers_of(store, dcm2niix_image)
    dropped = [d for d in layers if not store.blob_path(d.digest).exists()]
    assert dropped, "a built image keeps no layer blob it can rebuild"
    assert all(store.tarsplit_path(d.digest).is_file() for d in dropped)
    assert verify_record(store, dcm2niix_image).ok
    report = du(store)
    assert report.store < 1.5 * report.unpacked  # no second copy of the layers

    pushed = push_image(store, dcm2niix_image, f"{registry.address}/lab", insecure=True)
    assert pushed.digest == dcm2niix_image.digest  # read back from the registry
    client = Registry(RegistryAddress.parse(f"{registry.address}/lab", insecure=True))
    try:
        repo = f"lab/{dcm2niix_image.name}_{dcm2niix_image.version}"
        for descriptor in layers:
            assert client.blob_exists(repo, descriptor.digest)
    finally:
        client.close()
    blobs = []
    for descriptor in layers:
        with store.layer_blob(descriptor.digest) as blob:
            assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == descriptor.digest
            blobs.append(tmp_path / descriptor.hex)
            shutil.copyfile(blob, blobs[-1])
    assert not any(store.blob_path(d.digest).exists() for d in dropped)  # still dropped
    # The rebuilt blobs unpack to exactly the stored tree.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    unpack_layers(blobs, fresh)
    expected = load_manifest(dcm2niix_image.image_dir / MANIFEST_NAME)
    assert compare(fresh, expected) == []


def test_one_directive_rebuild_exports_and_unpacks_only_the_changed_layers(
    dcm2niix_image: ImageRecord,
    nd_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recipe_dir = tmp_path / "dcm2niix"
    shutil.copytree(find_recipe("dcm2niix").parent, recipe_dir)
    recipe = recipe_dir / "build.yaml"
    data = yaml.safe_load(recipe.read_text())
    env = next(d for d in data["build"]["directives"] if "environment" in d)
    env["environment"]["EDITED"] = "1"
    recipe.write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv("NEURODESK_BUILDDATE", OTHER_DATE)
    said: list[str] = []
    store = Store(Paths(nd_home).store)
    try:
        result = build_recipe(
            recipe, Paths(nd_home), say=said.append, releases=tmp_path / "catalog"
        )
        record = result.record
        old = layers_of(store, dcm2niix_image)
        new = layers_of(store, record)
        same = next(i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b)
        assert same >= 2  # base and install layers unchanged
        # Unpacked from the stored state after the large unchanged layers (a small one, an
        # ENV step, may be replayed from its kept blob): the base and install are not read.
        (reused,) = [m for m in said if m.startswith("unpacking ")]
        match = re.fullmatch(
            r"unpacking (\d+) of (\d+) layer\(s\) on the stored state of the first (\d+)", reused
        )
        assert match, reused
        unpacked, total, start = map(int, match.groups())
        assert total == len(new) and 2 <= start <= same and unpacked == total - start
        assert all(d.size < SMALL_LAYER for d in new[start:same])
        # The export left the unchanged large layers out (had it written them, the import
        # would have stored their blobs again).
        assert not any(store.blob_path(d.digest).exists() for d in new[:start])
        assert record.env["EDITED"] == "1"
        assert compare(record.rootfs, load_manifest(record.image_dir / MANIFEST_NAME)) == []
        dcm = "usr/bin/dcm2niix"
        assert (record.rootfs / dcm).stat().st_ino == (dcm2niix_image.rootfs / dcm).stat().st_ino
        assert verify_record(store, record).ok
    finally:
        store.remove(f"dcm2niix/{dcm2niix_image.version}/{OTHER_DATE}")
