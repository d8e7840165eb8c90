"""``neurodesk mirror SRC DST``: registry→registry, registry→tree, tree→tree (issue 7)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from neurodesk.image.oci import OCILayout
from neurodesk.paths import Paths
from neurodesk.publish.registry import push_image
from neurodesk.sources.registry import Registry, RegistryAddress
from neurodesk.store import ImageRecord, Store
from tests.conftest import assert_one_line_error, run_cli
from tests.integration.conftest import need
from tests.integration.distribution_helpers import RegistryServer, tiny_layout

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RegistryServer]]:
    need("docker-registry")
    started = [RegistryServer(tmp_path_factory.mktemp(f"mirror{i}")).start() for i in range(2)]
    yield started
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def images(
    tmp_path_factory: pytest.TempPathFactory, servers: list[RegistryServer]
) -> list[ImageRecord]:
    base = tmp_path_factory.mktemp("mirrorimages")
    store = Store(Paths(base / "home").store)
    records = []
    for name, version in (("alpha", "1.0"), ("beta", "2.3")):
        layout = tiny_layout(base / name, name=name, version=version)
        record = store.import_layout(OCILayout(layout), name, version, "20260101")
        push_image(store, record, f"{servers[0].address}/site", insecure=True)
        records.append(record)
    return records


def mirror(home: Path, *args: str) -> dict[str, list[str]]:
    proc = run_cli(["mirror", *args, "--insecure", "--json"], home)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, list[str]] = json.loads(proc.stdout)
    return result


def test_registry_to_registry_copies_only_what_is_missing(
    servers: list[RegistryServer], images: list[ImageRecord], tmp_path: Path
) -> None:
    src, dst = f"{servers[0].address}/site", f"{servers[1].address}/copy"
    home = tmp_path / "home"
    first = mirror(home, src, dst, "--image", "alpha")
    assert first == {"copied": ["alpha_1.0_20260101"], "already_present": []}
    second = mirror(home, src, dst)
    assert second == {"copied": ["beta_2.3_20260101"], "already_present": ["alpha_1.0_20260101"]}
    client = Registry(RegistryAddress.parse(dst, insecure=True))
    for record in images:
        repo = f"copy/{record.name}_{record.version}"
        assert client.manifest(repo, record.builddate)[2] == record.digest
    client.close()
    assert mirror(home, src, dst)["copied"] == []


def test_registry_to_tree_and_tree_to_tree(
    servers: list[RegistryServer], images: list[ImageRecord], tmp_path: Path
) -> None:
    src = f"{servers[0].address}/site"
    home = tmp_path / "home"
    tree, replica = tmp_path / "stratum0", tmp_path / "stratum1"
    assert len(mirror(home, src, str(tree))["copied"]) == 2
    assert mirror(home, src, str(tree))["copied"] == []
    for record in images:
        sandbox = tree / "containers" / record.id / f"{record.id}.simg"
        assert (sandbox / "opt/tiny/data.bin").read_bytes() == (
            record.rootfs / "opt/tiny/data.bin"
        ).read_bytes()
    result = mirror(home, str(tree), str(replica))
    assert sorted(result["copied"]) == sorted(r.id for r in images)
    assert mirror(home, str(tree), str(replica))["copied"] == []
    assert (replica / "log.txt").read_text() == (tree / "log.txt").read_text()
    assert (replica / "apps.json").read_text() == (tree / "apps.json").read_text()
    # The replica works as a source on its own.
    user = tmp_path / "user"
    proc = run_cli(["install", "beta", "--from", str(replica), "--json"], user)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["commands"] == ["tinytool"]


def test_mirror_errors(tmp_path: Path) -> None:
    home = tmp_path / "home"
    not_tree = tmp_path / "plain"
    not_tree.mkdir()
    assert_one_line_error(
        run_cli(["mirror", str(not_tree), str(tmp_path / "x")], home), "not a CVMFS-layout tree"
    )
    assert_one_line_error(run_cli(["mirror", "127.0.0.1:9/ns", "127.0.0.1:9/other",
                                   "--insecure"], home))  # fmt: skip
