"""Lock and sync through a real registry (Debian's docker-registry), digest-verified (issue 20)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from neurodesk.image.oci import OCILayout
from neurodesk.paths import Paths
from neurodesk.store import Store
from tests.conftest import assert_one_line_error, run_cli
from tests.integration.conftest import need
from tests.integration.distribution_helpers import RegistryServer, tiny_layout

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    need("docker-registry", "bwrap")
    server = RegistryServer(tmp_path_factory.mktemp("registry")).start()
    yield server
    server.stop()


def home_with(tmp_path: Path, registry: RegistryServer, ns: str, seed: int = 0) -> Path:
    """A NEURODESK_HOME whose store has 'tiny' (its content chosen by ``seed``) and whose
    config names the registry namespace as source 'lab'."""
    home = tmp_path / f"home-{seed}"
    layout = tiny_layout(tmp_path / f"layout-{seed}", name="tiny", seed=seed)
    Store(Paths(home).store).import_layout(OCILayout(layout), "tiny", "1.0", "20260101")
    configure(home, registry, ns)
    return home


def configure(home: Path, registry: RegistryServer, ns: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(
        "sources:\n"
        f"  - {{name: lab, kind: registry, mirrors: ['{registry.address}/{ns}'], insecure: true}}\n"
    )


def test_lock_then_sync_reproduces_the_exact_image_elsewhere(
    registry: RegistryServer, tmp_path: Path
) -> None:
    origin = home_with(tmp_path, registry, "locked")
    published = run_cli(
        ["publish", "tiny", "--registry", f"{registry.address}/locked", "--insecure"], origin
    )
    assert published.returncode == 0, published.stderr
    digest = Store(Paths(origin).store).resolve("tiny").digest
    lockfile = tmp_path / "project" / "neurodesk.lock"
    made = run_cli(["lock", "tiny", "-o", str(lockfile)], origin)
    assert made.returncode == 0, made.stderr
    (locked,) = json.loads(lockfile.read_text())["tools"]
    reference = f"{registry.address}/locked/tiny_1.0:20260101@{digest}"
    assert locked["digest"] == digest
    assert locked["reference"] == reference
    assert locked["source"] == {
        "kind": "registry",
        "location": f"{registry.address}/locked",
        "name": "lab",
    }

    elsewhere = tmp_path / "elsewhere"
    configure(elsewhere, registry, "locked")
    synced = run_cli(["sync", str(lockfile), "--json"], elsewhere)
    assert synced.returncode == 0, synced.stderr
    how = json.loads(synced.stdout)[0]["how"]
    assert how == f"fetched by digest from {registry.address}/locked"
    assert Store(Paths(elsewhere).store).resolve("tiny/1.0/20260101").digest == digest
    wrapper = elsewhere / "installs" / "containers" / "tiny_1.0_20260101" / "bin" / "tinytool"
    assert wrapper.is_file()
    # Again: nothing to fetch. And the lock of what is installed there is the same set.
    again = run_cli(["sync", str(lockfile), "--json"], elsewhere)
    assert json.loads(again.stdout)[0]["how"] == "present"
    relock = run_cli(["lock", "-o", "-"], elsewhere)
    assert relock.returncode == 0, relock.stderr
    assert json.loads(relock.stdout)["tools"] == [locked]

    # exec-lock (DataLad's call format) in a fresh home fetches exactly the pinned image first.
    # (The tiny image has no shell to run its tool; what matters here is what got fetched.)
    fresh = tmp_path / "fresh"
    configure(fresh, registry, "locked")
    run_cli(["exec-lock", str(lockfile), "--", "/usr/bin/tinytool"], fresh)
    assert Store(Paths(fresh).store).resolve("tiny/1.0/20260101").digest == digest


def test_a_moved_tag_still_syncs_by_digest_and_a_lost_digest_fails_loudly(
    registry: RegistryServer, tmp_path: Path
) -> None:
    origin = home_with(tmp_path, registry, "moved")
    assert run_cli(["publish", "tiny", "--registry", f"{registry.address}/moved",
                    "--insecure"], origin).returncode == 0  # fmt: skip
    lockfile = tmp_path / "neurodesk.lock"
    assert run_cli(["lock", "tiny", "-o", str(lockfile)], origin).returncode == 0
    locked = json.loads(lockfile.read_text())["tools"][0]["digest"]
    # The tag is pushed again with other content; the locked manifest is still there by digest.
    other = home_with(tmp_path / "other", registry, "moved", seed=1)
    assert run_cli(["publish", "tiny", "--registry", f"{registry.address}/moved",
                    "--insecure"], other).returncode == 0  # fmt: skip
    first = tmp_path / "first"
    configure(first, registry, "moved")
    proc = run_cli(["sync", str(lockfile), "--json"], first)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["how"].startswith("fetched by digest from ")
    assert Store(Paths(first).store).resolve("tiny").digest == locked

    # Then the registry loses the locked manifest (deleted, garbage-collected): only the
    # tag's other image is left, and that is not what the lock pins.
    revisions = registry.storage / "docker/registry/v2/repositories/moved/tiny_1.0/_manifests"
    shutil.rmtree(revisions / "revisions" / "sha256" / locked.removeprefix("sha256:"))
    elsewhere = tmp_path / "elsewhere"
    configure(elsewhere, registry, "moved")
    proc = run_cli(["sync", str(lockfile)], elsewhere)
    assert_one_line_error(proc, "the lock wants", "can no longer be had")
    assert Store(Paths(elsewhere).store).images() == []  # nothing half-done
    assert not (elsewhere / "installs" / "containers").exists()
