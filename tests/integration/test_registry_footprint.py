"""Images installed from a registry: the store keeps no second copy of their large layer
blobs, publishing fetches them again by digest (verified), and layers whose state the store
already holds are not downloaded again (issue 16)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from neurodesk.image.oci import OCILayout
from neurodesk.paths import Paths
from neurodesk.publish.registry import push_image
from neurodesk.store import ImageRecord, Store
from tests.conftest import assert_one_line_error, run_cli
from tests.integration.conftest import need
from tests.integration.distribution_helpers import (
    FaultProxy,
    RegistryServer,
    _blob,
    _layer,
)

pytestmark = pytest.mark.integration

BIG = 3 << 20  # above the store's SMALL_LAYER: such a layer blob is not kept


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    need("docker-registry")
    server = RegistryServer(tmp_path_factory.mktemp("registry")).start()
    yield server
    server.stop()


def layered_layout(root: Path, name: str, base_seed: int, top: str) -> Path:
    """An OCI layout of one image: a large random base layer (shared by every image made with
    the same ``base_seed``) and a small top layer of its own."""
    data = random.Random(base_seed).randbytes(BIG)
    layers = [
        _layer({"opt/base/data.bin": data}),
        _layer({"usr/bin/tool": f"#!/bin/sh\necho {top}\n", "build.yaml": f"name: {name}\n"}),
    ]
    descs = [
        {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **_blob(root, blob)}
        for blob, _ in layers
    ]
    config: dict[str, Any] = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin", "DEPLOY_BINS=tool"]},
        "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            **_blob(root, json.dumps(config).encode()),
        },
        "layers": descs,
    }
    ref = {"org.opencontainers.image.ref.name": f"{name}_1.0:20260101"}
    desc = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        **_blob(root, json.dumps(manifest).encode()),
        "annotations": ref,
    }
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))
    (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    return root


def seed_image(tmp_path: Path, registry: RegistryServer, name: str, base_seed: int) -> ImageRecord:
    """Push image ``name`` (from a scratch store) to the registry's ``lab`` namespace."""
    layout = layered_layout(tmp_path / f"layout-{name}", name, base_seed, name)
    store = Store(Paths(tmp_path / f"seed-{name}").store)
    record = store.import_layout(OCILayout(layout), name, "1.0", "20260101")
    push_image(store, record, f"{registry.address}/lab", insecure=True)
    return record


def configure(home: Path, mirror: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    source = {"name": "reg", "kind": "registry", "mirrors": [mirror], "insecure": True}
    (home / "config.yaml").write_text(json.dumps({"sources": [source], "timeout": 5}))


def layer_digests(store: Store, record: ImageRecord) -> list[str]:
    manifest = json.loads(store.blob_path(record.digest).read_bytes())
    return [str(d["digest"]) for d in manifest["layers"]]


def test_registry_install_keeps_no_second_copy_and_publish_fetches_it_again(
    registry: RegistryServer, tmp_path: Path
) -> None:
    seeded = seed_image(tmp_path, registry, "lean", base_seed=1)
    home = tmp_path / "home"
    configure(home, f"{registry.address}/lab")
    proc = run_cli(["install", "lean", "--from", "reg", "--json"], home)
    assert proc.returncode == 0, proc.stderr
    store = Store(Paths(home).store)
    record = store.resolve("lean")
    assert record.digest == seeded.digest
    big, small = layer_digests(store, record)
    assert not store.blob_path(big).exists()  # unpacked from the verified download, not kept
    assert store.blob_path(small).is_file() and store.blob_path(record.digest).is_file()
    assert (record.rootfs / "opt/base/data.bin").stat().st_size == BIG
    du = run_cli(["du", "--json"], home)
    assert du.returncode == 0, du.stderr
    assert json.loads(du.stdout)["footprint_ratio"] <= 1.1
    check = run_cli(["verify", "lean", "--json"], home)
    assert check.returncode == 0, check.stdout + check.stderr

    # Publishing elsewhere fetches the dropped blob again by digest: same manifest digest.
    pushed = run_cli(["publish", "lean", "--registry", f"{registry.address}/copy", "--insecure",
                      "--json"], home)  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    assert json.loads(pushed.stdout)[0]["digest"] == seeded.digest
    assert not store.blob_path(big).exists()  # the re-fetched copy was only borrowed

    # A registry serving other bytes under that digest is refused, not published.
    registry.blob_file(big).write_bytes(b"not the layer")
    bad = run_cli(["publish", "lean", "--registry", f"{registry.address}/third", "--insecure"],
                  home)  # fmt: skip
    assert_one_line_error(bad, big[:19])

    assert store.refetch_path(big).is_file()  # gc keeps the record while an image uses it
    assert run_cli(["gc"], home).returncode == 0 and store.refetch_path(big).is_file()
    assert run_cli(["rm", "lean"], home).returncode == 0
    assert run_cli(["gc"], home).returncode == 0 and not store.refetch_path(big).exists()


def test_a_layer_whose_state_the_store_holds_is_not_downloaded_again(
    registry: RegistryServer, tmp_path: Path
) -> None:
    first = seed_image(tmp_path, registry, "alpha", base_seed=2)
    seed_image(tmp_path, registry, "beta", base_seed=2)  # the same base layer
    third = seed_image(tmp_path, registry, "gamma", base_seed=2)
    proxy = FaultProxy(int(registry.address.rpartition(":")[2]))
    try:
        home = tmp_path / "home"
        configure(home, f"{proxy.address}/lab")
        store = Store(Paths(home).store)
        layers = store.root / "layers"
        assert run_cli(["install", "alpha", "--from", "reg"], home).returncode == 0
        base, _top = layer_digests(store, store.resolve("alpha"))
        assert proxy.saw(f"/blobs/{base}")
        # A pulled image's own prefixes are not kept as states (they cost install time) ...
        assert not layers.is_dir() or not any(layers.iterdir())
        # ... until a second image starts with the same layers: then that state is kept.
        assert run_cli(["install", "beta", "--from", "reg"], home).returncode == 0
        assert len(list(layers.iterdir())) == 1
        proxy.requests.clear()
        proc = run_cli(["install", "gamma", "--from", "reg", "--json"], home)
        assert proc.returncode == 0, proc.stderr
        gamma = store.resolve("gamma")
        shared, top = layer_digests(store, gamma)
        assert shared == base and gamma.digest == third.digest != first.digest
        assert proxy.saw(f"/blobs/{top}") and not proxy.saw(f"/blobs/{base}")
        assert (gamma.rootfs / "opt/base/data.bin").stat().st_size == BIG
        assert run_cli(["verify", "gamma"], home).returncode == 0
    finally:
        proxy.close()


def test_a_corrupt_layer_arriving_while_others_unpack_leaves_nothing_in_the_store(
    registry: RegistryServer, tmp_path: Path
) -> None:
    seeded = seed_image(tmp_path, registry, "broken", base_seed=3)
    seed_store = Store(Paths(tmp_path / "seed-broken").store)
    base, _top = layer_digests(seed_store, seeded)
    registry.blob_file(base).write_bytes(b"x" * BIG)  # the right size, the wrong bytes
    home = tmp_path / "home"
    configure(home, f"{registry.address}/lab")
    proc = run_cli(["install", "broken", "--from", "reg"], home)
    assert_one_line_error(proc, base[:19])
    store = Store(Paths(home).store)
    assert not (store.root / "refs").is_dir() or not any((store.root / "refs").rglob("*.json"))
    assert not (store.root / "images").is_dir() or not any((store.root / "images").iterdir())
    assert not store.refetch_path(base).exists()
    assert not (store.root / "tmp").is_dir() or not any((store.root / "tmp").iterdir())
