"""Store footprint (issue 16): the store's disk use against the unpacked images it holds.

Builds into a fresh NEURODESK_HOME whose buildah storage already holds the base image (the
cached debootstrap tarball, not timed), then reads ``neurodesk du --json`` (disk blocks, every
inode once, the whole store: unpacked trees, per-layer states, blobs, tar-split records, the
shared-files pool) at three points:

* one image (dcm2niix): footprint = store / the image unpacked alone (goal <= 1.1x);
* three builds of one tool (dcm2niix on three build dates, the environment directive changed
  each time, as a weekly rebuild): store / sum of the three images unpacked alone (goal <= 0.5x);
* tools on one base (dcm2niix, nifti-bin, gifti-bin): store / sum of the three (goal <= 0.5x).

Beside each figure it prints what the store would hold if it kept every layer blob as before
(the blobs' sizes added), so the saving is visible in the same run. Sizes are exact (one
measurement each); the time of ``neurodesk du`` is the median of three runs.

Usage: python -m benchmarks.bench_store [--tools dcm2niix,nifti-bin,gifti-bin]
(about 3-5 minutes on a quiet machine: three cold builds and two rebuilds)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_build import change_one_directive, copy_recipe, find_tarball, fresh_home
from neurodesk.paths import Paths
from neurodesk.sources.pull import parse_manifest
from neurodesk.store import Store

MB = 1e6


def run(argv: list[str], env: dict[str, str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stdout


def du_json(env: dict[str, str]) -> tuple[dict[str, Any], float]:
    argv = [sys.executable, "-m", "neurodesk", "du", "--json"]
    times = []
    for _ in range(3):
        start = time.perf_counter()
        out = run(argv, env)
        times.append(time.perf_counter() - start)
    return json.loads(out), statistics.median(times)


def blob_bytes(home: Path) -> int:
    """What keeping every layer blob of the stored images would take (each blob once)."""
    store = Store(Paths(home).store)
    sizes: dict[str, int] = {}
    for record in store.images():
        manifest = store.blob_path(record.digest)
        if record.source == "oci" and manifest.is_file():
            for layer in parse_manifest(manifest.read_bytes())[1]:
                sizes[layer.digest] = layer.size
    return sum(sizes.values())


def report(label: str, goal: float, env: dict[str, str], home: Path, rows: list[str]) -> None:
    data, seconds = du_json(env)
    images = [i for i in data["images"] if i.get("size") is not None]
    unpacked = int(data["unpacked_bytes"])
    store = int(data["store_bytes"])
    kept = store + blob_bytes(home) - int(data["blob_bytes"])
    ratio = store / unpacked
    rows.append(
        f"{label:<34} {len(images):>2} {unpacked / MB:>9.1f} {store / MB:>9.1f} "
        f"{ratio:>6.2f}x {kept / unpacked:>9.2f}x {goal:>5.2f}x "
        f"{'met' if ratio <= goal else 'NOT met':>7} {data['dedup_ratio']:>6.2f} "
        f"{seconds * 1e3:>7.0f}"
    )


def build(recipe: Path, env: dict[str, str], date: str | None = None) -> None:
    env = dict(env, NEURODESK_BUILDDATE=date) if date else env
    run([sys.executable, "-m", "neurodesk", "build", str(recipe), "--json"], env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tools", default="dcm2niix,nifti-bin,gifti-bin")
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("buildah") is None:
        print("error: needs root and buildah (sudo apt-get install buildah)")
        return 1
    tools = args.tools.split(",")
    work = Path(tempfile.mkdtemp(prefix="nd-bench-store-"))
    rows: list[str] = []
    try:
        home = fresh_home(work, find_tarball(work))
        env = dict(os.environ, NEURODESK_HOME=str(home), NEURODESK_OFFLINE="1")
        first = copy_recipe(tools[0], work / "recipe-0")
        print(f"building {tools[0]} ...", flush=True)
        build(first, env, "20260101")
        report(f"one image ({tools[0]})", 1.1, env, home, rows)
        for n, date in enumerate(("20260108", "20260115"), start=1):
            change_one_directive(first, f"week{n}")
            print(f"rebuilding {tools[0]} for {date} ...", flush=True)
            build(first, env, date)
        report(f"three builds of {tools[0]}", 0.5, env, home, rows)
        for date in ("20260108", "20260115"):
            run([sys.executable, "-m", "neurodesk", "rm", f"{tools[0]}//{date}"], env)
        for index, tool in enumerate(tools[1:], start=1):
            print(f"building {tool} ...", flush=True)
            build(copy_recipe(tool, work / f"recipe-{index}"), env, "20260101")
        run([sys.executable, "-m", "neurodesk", "gc"], env)
        report(f"tools on one base ({len(tools)})", 0.5, env, home, rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        "\nstore footprint (neurodesk du --json; MB = 1e6 bytes of disk blocks)\n"
        f"{'case':<34} {'n':>2} {'unpacked':>9} {'store':>9} {'ratio':>7} "
        f"{'w/ blobs':>10} {'goal':>6} {'':>7} {'dedup':>6} {'du ms':>7}"
    )
    print("\n".join(rows))
    print(
        "ratio = store / the images unpacked each alone; 'w/ blobs' = the same if every layer "
        "blob were kept as before; dedup = neurodesk du's deduplication ratio"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
