"""Fetching from configured sources: order, HTTP layouts and archives, mirrors (issue 7)."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from neurodesk.image.oci import OCILayout
from neurodesk.paths import Paths
from neurodesk.publish.registry import push_image
from neurodesk.publish.tree import publish_tree
from neurodesk.store import Store
from tests.conftest import assert_one_line_error, run_cli
from tests.integration.conftest import need
from tests.integration.distribution_helpers import FileServer, RegistryServer, tiny_layout

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("httplayout")
    root = tiny_layout(base / "layout", name="web", version="1.0", builddate="20260101")
    return tiny_layout(root, name="web", version="1.2", builddate="20260303")


@pytest.fixture(scope="module")
def server(layout: Path) -> Iterator[FileServer]:
    files = FileServer(layout)
    yield files
    files.close()


def configure(home: Path, sources: list[dict[str, object]]) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(json.dumps({"sources": sources, "timeout": 2}))


def test_http_layout_with_a_dead_mirror_picks_the_live_one(
    server: FileServer, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    configure(home, [{"name": "web", "kind": "http",
                      "mirrors": ["http://127.0.0.1:9/", server.url]}])  # fmt: skip
    proc = run_cli(["install", "web", "--json"], home)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["image"] == "web_1.2_20260303"  # the newest version
    older = run_cli(["install", "web/1.0", "--json"], home)
    assert json.loads(older.stdout)["image"] == "web_1.0_20260101"
    listing = run_cli(["search", "web", "--json"], home)
    (hit,) = json.loads(listing.stdout)
    assert hit["versions"] == ["1.0", "1.2"] and "web" in hit["sources"]


def test_oci_archive_over_http_and_from_a_file(layout: Path, tmp_path: Path) -> None:
    archive = tmp_path / "served" / "web.tar"
    archive.parent.mkdir()
    with tarfile.open(archive, "w") as tar:
        for path in sorted(layout.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(layout)), recursive=False)
    files = FileServer(archive.parent)
    try:
        proc = run_cli(["install", "web/1.0", "--from", files.url + "web.tar", "--json"],
                       tmp_path / "a")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    finally:
        files.close()
    proc = run_cli(["install", "web", "--from", str(archive), "--json"], tmp_path / "b")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["image"] == "web_1.2_20260303"


def test_sources_are_tried_in_kind_order_tree_before_registry(layout: Path, tmp_path: Path) -> None:
    need("docker-registry")
    seed = tmp_path / "seed"
    store = Store(Paths(seed).store)
    record = store.import_layout(
        OCILayout(layout), "web", "1.2", "20260303", ref="web_1.2:20260303"
    )
    registry = RegistryServer(tmp_path / "registry").start()
    try:
        push_image(store, record, f"{registry.address}/ns", insecure=True)
        tree = tmp_path / "tree"
        publish_tree(record, tree)
        home = tmp_path / "home"
        configure(home, [
            {"name": "reg", "kind": "registry", "mirrors": [f"{registry.address}/ns"],
             "insecure": True},
            {"name": "site", "kind": "tree", "mirrors": [str(tree)]},
        ])  # fmt: skip
        proc = run_cli(["install", "web", "--json"], home)
        assert proc.returncode == 0, proc.stderr
        used = Store(Paths(home).store).resolve("web")
        assert used.source == "sandbox" and used.rootfs.is_relative_to(tree)
        other = tmp_path / "other"
        configure(other, [{"name": "reg", "kind": "registry",
                           "mirrors": [f"{registry.address}/ns"], "insecure": True}])  # fmt: skip
        proc = run_cli(["install", "web", "--from", "reg", "--json"], other)
        assert proc.returncode == 0, proc.stderr
        assert Store(Paths(other).store).resolve("web").digest == record.digest
    finally:
        registry.stop()


def test_bad_config_and_unknown_images_are_one_line_errors(
    server: FileServer, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text("sources:\n  - name: x\n    kind: ftp\n    url: a\n")
    proc = run_cli(["install", "web"], home)
    assert_one_line_error(proc, "config.yaml", "sources[0].kind")
    (home / "config.yaml").write_text("sources: [\n")
    assert_one_line_error(run_cli(["install", "web"], home), "not valid YAML")
    configure(home, [{"name": "web", "kind": "http", "mirrors": [server.url]}])
    assert_one_line_error(run_cli(["install", "nosuchtool"], home), "nosuchtool", "web")
    assert_one_line_error(
        run_cli(["install", "web", "--from", str(tmp_path)], home), "neither a CVMFS-layout tree"
    )
