"""Hostile mirrors and many processes (issue 17): a trickling, stalling, looping, HTML or garbage
mirror ends in one line naming it, and the next mirror serves; publishing to a server that
answers 200 HTML fails; eight parallel installs into one home all succeed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from neurodesk.image.oci import OCILayout
from neurodesk.paths import Paths
from neurodesk.publish.registry import push_image
from neurodesk.sources.http import SourceError
from neurodesk.store import ImageRecord, Store
from tests.conftest import assert_one_line_error, run_cli
from tests.hostile import HostileServer
from tests.integration.conftest import need
from tests.integration.distribution_helpers import (
    FaultProxy,
    RegistryServer,
    store_digests_ok,
    tiny_layout,
)

pytestmark = pytest.mark.integration
PAYLOAD = 512 * 1024
NAMES = ("alpha", "beta")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A real registry holding two small images."""
    need("docker-registry")
    base = tmp_path_factory.mktemp("hostile")
    store = Store(Paths(base / "home").store)
    server = RegistryServer(base / "registry").start()
    for name in NAMES:
        layout = tiny_layout(base / name, name=name, payload=PAYLOAD)
        record = store.import_layout(OCILayout(layout), name, "1.0", "20260101")
        push_image(store, record, f"{server.address}/ns", insecure=True)
    yield server
    server.stop()


def write_config(home: Path, mirrors: list[str]) -> None:
    home.mkdir(parents=True, exist_ok=True)
    config = {
        "sources": [{"name": "lab", "kind": "registry", "mirrors": mirrors, "insecure": True}],
        "timeout": 1,
        "retries": 2,
        "low_speed_limit": 20000,
        "low_speed_time": 1,
        "deadline": 10,
    }
    (home / "config.yaml").write_text(json.dumps(config))


HOSTILE = [
    ("trickle", "/blobs/"),
    ("stall", "/blobs/"),
    ("redirect-loop", "/manifests/"),
    ("html", "/tags/"),
    ("garbage-json", "/manifests/"),
    ("garbage-manifest", "/manifests/"),
    ("wrong-shape", "/tags/"),
    ("catalog-loop", "/_catalog"),
]


@pytest.mark.parametrize(("mode", "target"), HOSTILE)
def test_a_hostile_mirror_fails_in_one_line_and_the_next_one_serves(
    registry: RegistryServer, tmp_path: Path, mode: str, target: str
) -> None:
    upstream = f"http://{registry.address}"
    with HostileServer(mode, upstream=upstream, target=target, max_seconds=15) as hostile:
        alone = tmp_path / "alone"
        write_config(alone, [f"{hostile.address}/ns"])
        start = time.monotonic()
        proc = run_cli(["install", "alpha", "--from", "lab"], alone)
        assert_one_line_error(proc, hostile.address)
        assert time.monotonic() - start < 30
        assert not (Paths(alone).store / "refs" / "alpha").exists()
        assert store_digests_ok(Paths(alone).store) == []

        slow_good = FaultProxy(registry.port)
        slow_good.delay = 0.3  # the probe ranks the hostile mirror first
        try:
            both = tmp_path / "both"
            write_config(both, [f"{hostile.address}/ns", f"{slow_good.address}/ns"])
            start = time.monotonic()
            proc = run_cli(["install", "alpha", "--json"], both)
            assert proc.returncode == 0, proc.stderr
            assert time.monotonic() - start < 40
            assert any(target in r for r in hostile.requests)  # it was tried, and given up
            assert Store(Paths(both).store).resolve("alpha").rootfs.is_dir()
            assert store_digests_ok(Paths(both).store) == []
        finally:
            slow_good.close()


def test_html_everywhere_is_not_a_registry(registry: RegistryServer, tmp_path: Path) -> None:
    with HostileServer("html", html_everywhere=True) as portal:
        home = tmp_path / "home"
        write_config(home, [f"{portal.address}/ns"])
        assert_one_line_error(run_cli(["install", "alpha"], home), portal.address)


def test_publishing_to_a_server_answering_200_html_fails(
    registry: RegistryServer, tmp_path: Path
) -> None:
    store = Store(Paths(tmp_path / "home").store)
    layout = tiny_layout(tmp_path / "layout", name="gamma", payload=1024)
    record = store.import_layout(OCILayout(layout), "gamma", "1.0", "20260101")
    with HostileServer("html", html_everywhere=True) as portal:
        with pytest.raises(SourceError, match=portal.address):
            push_image(store, record, f"{portal.address}/ns", insecure=True, retries=1)
        proc = run_cli(
            ["publish", "gamma", "--registry", f"{portal.address}/ns", "--insecure"],
            tmp_path / "home",
        )
        assert_one_line_error(proc, portal.address)
        assert "published" not in proc.stdout


def test_publishing_reads_the_manifest_back(registry: RegistryServer, tmp_path: Path) -> None:
    store = Store(Paths(tmp_path / "home").store)
    layout = tiny_layout(tmp_path / "layout", name="delta", payload=1024)
    record: ImageRecord = store.import_layout(OCILayout(layout), "delta", "1.0", "20260101")
    result = push_image(store, record, f"{registry.address}/ns", insecure=True)
    assert result.digest == record.digest


def test_eight_parallel_installs_into_one_home(registry: RegistryServer, tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_config(home, [f"{registry.address}/ns"])
    env = {**os.environ, "NEURODESK_HOME": str(home), "NO_COLOR": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "neurodesk", "install", NAMES[i % 2], "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    results = [(p.wait(timeout=240), p.stderr.read() if p.stderr else "") for p in procs]
    for proc in procs:
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
    failures = [err for rc, err in results if rc != 0]
    assert failures == [], failures
    store = Store(Paths(home).store)
    assert {r.name for r in store.images()} == set(NAMES)
    assert store_digests_ok(Paths(home).store) == []
    assert not any((home / "cache" / "fetch").glob("*/blobs"))  # every fetch dir cleaned up
