"""kill -9 at random points of ``install`` and ``publish`` (issue 7), 20 times each.

After every kill: no blob in the store mismatches its digest, every ref names a complete
image, and a tree shows only complete containers. After the loop, one more run succeeds and
yields the right content: nothing corrupt, nothing lost.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from neurodesk.catalog.appsjson import parse_log
from neurodesk.image.oci import OCILayout
from neurodesk.paths import Paths
from neurodesk.sources.registry import Registry, RegistryAddress
from neurodesk.sources.tree import Tree
from neurodesk.store import Store
from tests.conftest import REPO, run_cli
from tests.integration.conftest import need
from tests.integration.distribution_helpers import RegistryServer, store_digests_ok, tiny_layout

pytestmark = pytest.mark.integration
KILLS = 20
PAYLOAD = 4 * 1024 * 1024
rng = random.Random(7)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    need("docker-registry")
    server = RegistryServer(tmp_path_factory.mktemp("killreg")).start()
    yield server
    server.stop()


def start_cli(args: list[str], home: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, NEURODESK_HOME=str(home), NEURODESK_RECIPES=str(REPO / "recipes"))
    return subprocess.Popen(
        [sys.executable, "-m", "neurodesk", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def timed_run(args: list[str], home: Path) -> float:
    start = time.monotonic()
    proc = run_cli(args, home)
    assert proc.returncode == 0, proc.stderr
    return time.monotonic() - start


def startup(home: Path) -> float:
    """How long the CLI takes to start doing anything: kills before that test nothing."""
    return timed_run(["--version"], home)


def kill_after(args: list[str], home: Path, delay: float) -> int | None:
    proc = start_cli(args, home)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    return proc.wait()


def assert_store_consistent(home: Path) -> None:
    store = Store(Paths(home).store)
    assert store_digests_ok(store.root) == []
    for record in store.images():
        assert record.rootfs.is_dir(), record
        assert store.blob_path(record.digest).is_file(), record


def assert_tree_consistent(root: Path) -> None:
    tree = Tree(root)
    if not tree.containers.is_dir():
        return
    published = (
        {c.id for c in parse_log((root / "log.txt").read_text())}
        if (root / "log.txt").exists()
        else set()
    )
    for entry in tree.containers.iterdir():
        if entry.name.startswith("."):
            continue
        # A visible container is always complete, whether or not the catalog names it yet.
        assert (entry / "image.json").is_file(), entry
        assert (entry / "commands.txt").read_text().split() == ["tinytool"], entry
        data = entry / f"{entry.name}.simg" / "opt/tiny/data.bin"
        assert data.stat().st_size == PAYLOAD, entry
    for image_id in published:
        assert tree.sandbox(image_id).is_dir(), image_id
    if (root / "apps.json").exists():
        json.loads((root / "apps.json").read_text())


def test_kill_during_install(registry: RegistryServer, tmp_path: Path) -> None:
    layout = tiny_layout(tmp_path / "layout", name="killme", payload=PAYLOAD)
    seed_home = tmp_path / "seed"
    record = Store(Paths(seed_home).store).import_layout(
        OCILayout(layout), "killme", "1.0", "20260101"
    )
    assert run_cli(["publish", "killme", "--registry", f"{registry.address}/k", "--insecure"],
                   seed_home).returncode == 0  # fmt: skip
    args = ["install", "killme", "--from", f"{registry.address}/k", "--insecure"]
    full = timed_run(args, tmp_path / "warm")
    home = tmp_path / "home"
    begin = startup(home) * 0.7
    store = Store(Paths(home).store)
    completed = 0
    for _ in range(KILLS):
        code = kill_after(args, home, rng.uniform(begin, full * 1.05))
        completed += code == 0
        assert_store_consistent(home)
        if any(r.name == "killme" for r in store.images()):
            store.remove("killme")  # next round must fetch and unpack again
    final = run_cli([*args, "--json"], home)
    assert final.returncode == 0, final.stderr
    fetched = store.resolve("killme")
    assert fetched.digest == record.digest
    assert (fetched.rootfs / "opt/tiny/data.bin").read_bytes() == (
        record.rootfs / "opt/tiny/data.bin"
    ).read_bytes()
    assert_store_consistent(home)
    assert completed < KILLS  # the kills really interrupted work


def test_kill_during_publish(registry: RegistryServer, tmp_path: Path) -> None:
    layout = tiny_layout(tmp_path / "layout", name="pub", payload=PAYLOAD)
    home = tmp_path / "home"
    store = Store(Paths(home).store)
    dates = [f"202601{day:02d}" for day in range(1, KILLS + 1)]
    for date in [*dates, "20260131"]:  # one image per round: every round has real work to do
        store.import_layout(OCILayout(layout), "pub", "1.0", date)
    tree = tmp_path / "tree"
    target = f"{registry.address}/pubkill"
    begin = startup(home) * 0.7
    full_tree = timed_run(["publish", "pub/1.0/20260131", "--tree", str(tree)], home)
    full_reg = timed_run(["publish", "pub/1.0/20260131", "--registry", target, "--insecure"], home)
    for round_, date in enumerate(dates):
        if round_ % 2 == 0:
            kill_after(["publish", f"pub/1.0/{date}", "--tree", str(tree)], home,
                       rng.uniform(begin, full_tree * 1.05))  # fmt: skip
            assert_tree_consistent(tree)
        else:
            kill_after(["publish", f"pub/1.0/{date}", "--registry", target, "--insecure"], home,
                       rng.uniform(begin, full_reg * 1.05))  # fmt: skip
    # The next runs (one per target, publishing every image of the store) succeed and leave
    # everything complete, staging cleaned.
    proc = run_cli(["publish", "--tree", str(tree)], home)
    assert proc.returncode == 0, proc.stderr
    assert_tree_consistent(tree)
    assert not any((tree / ".neurodesk-staging").iterdir())
    logged = {c.id for c in parse_log((tree / "log.txt").read_text())}
    assert "pub_1.0_20260131" in logged  # one release per version: the newest build date
    for date in dates:
        assert (tree / "containers" / f"pub_1.0_{date}" / "commands.txt").is_file(), date
    proc = run_cli(["publish", "--registry", target, "--insecure"], home)
    assert proc.returncode == 0, proc.stderr
    client = Registry(RegistryAddress.parse(target, insecure=True))
    digest = store.resolve("pub/1.0/20260102").digest
    assert client.manifest("pubkill/pub_1.0", dates[1])[2] == digest
    client.close()
    fresh = tmp_path / "fresh"
    proc = run_cli(["install", f"pub/1.0/{dates[-1]}", "--from", target, "--insecure"], fresh)
    assert proc.returncode == 0, proc.stderr
    assert_store_consistent(fresh)
