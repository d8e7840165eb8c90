"""The store under kill -9 and under several writers at once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from neurodesk.image.oci import OCILayout
from neurodesk.store import Store
from neurodesk.store.maintenance import gc
from tests.conftest import REPO
from tests.unit.ocihelp import write_layout
from tests.unit.test_store import check_consistent

pytestmark = pytest.mark.integration

# Imports images forever (or COUNT times), each with its own content plus one shared file.
IMPORTER = """
import os, sys
from pathlib import Path
import pytest

from neurodesk.image.oci import OCILayout
from neurodesk.store import Store
from tests.unit.ocihelp import write_layout
store, work, tag, count = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
i = 0
while count < 0 or i < count:
    files = {f"data/{n}": f"{tag}-{i}-{n}".encode() * 400 for n in range(150)}
    files["shared"] = b"same in every image" * 1000
    layout = write_layout(work / f"{tag}-{i}", [files])
    Store(store).import_layout(OCILayout(layout), tag, str(i), "20260101")
    print(i, flush=True)
    i += 1
"""


def importer(store: Path, work: Path, tag: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", IMPORTER, str(store), str(work), tag, str(count)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )


def check_images_complete(store: Store) -> None:
    for record in store.images():
        assert (record.rootfs / "shared").read_bytes() == b"same in every image" * 1000
        for n in (0, 149):
            expected = f"{record.name}-{record.version}-{n}".encode() * 400
            assert (record.rootfs / f"data/{n}").read_bytes() == expected


def test_kill_9_at_random_moments_leaves_old_or_new_state(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    rng = random.Random(5)
    for attempt in range(20):
        proc = importer(store.root, tmp_path / f"work{attempt}", f"k{attempt}", -1)
        assert proc.stdout is not None
        proc.stdout.readline()  # one import done: the kill lands inside a later one
        time.sleep(rng.uniform(0.0, 0.25))  # an import takes ~0.1-0.2 s
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        check_consistent(store)
        check_images_complete(store)
    report = gc(store)
    check_consistent(store)
    assert not any((store.root / "tmp").iterdir())
    assert report.bytes_freed >= 0
    layout = write_layout(tmp_path / "after", [{"data/0": b"x", "shared": b"y"}])
    record = store.import_layout(OCILayout(layout), "after", "1", "20260101")
    assert (record.rootfs / "data/0").read_bytes() == b"x"
    assert len(store.images()) >= 21  # every attempt completed at least one import


def test_concurrent_imports_all_land(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    procs = [importer(store.root, tmp_path / f"w{n}", f"c{n}", 4) for n in range(3)]
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
    assert sorted(r.id for r in store.images()) == sorted(
        f"c{n}_{i}_20260101" for n in range(3) for i in range(4)
    )
    check_consistent(store)
    check_images_complete(store)
    shared = {(r.rootfs / "shared").stat().st_ino for r in store.images()}
    assert len(shared) == 1  # the same file in 12 images is stored once
