"""Build caching (issue 4): cold build, unchanged rebuild and one-directive rebuild.

For each recipe (dcm2niix and mrtrix3), each run starts from a fresh buildah storage and an
empty store that already hold the base image (debian:bookworm, registered from the cached
debootstrap tarball, not timed), then times ``neurodesk build`` three ways, one after another:

* cold: nothing cached but the base (packages are downloaded from the apt mirror);
* unchanged: the same recipe again (every step cached, export skipped);
* one directive: the recipe's ``environment`` directive changed (steps before it cached).

Two tables per recipe: wall time of the whole command, and the builder's steps alone (from
``--json`` timings), since export and store import cost the same whatever the builder reused.

Usage: python -m benchmarks.bench_build [--runs N] [--recipes dcm2niix,mrtrix3]

``--quick`` (about 3 minutes on a quiet machine, dcm2niix): one cold build, then three
unchanged and three one-directive rebuilds on top of it (medians; ratios against the cold
build), with the export + store import phase beside the builder's steps.
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

import yaml

from benchmarks.common import print_table
from neurodesk.build.base import Distro, ensure_base
from neurodesk.build.buildah import BuildahBuilder
from neurodesk.errors import NeurodeskError
from neurodesk.paths import Paths
from neurodesk.recipe import find_recipe

BASE = "debian:bookworm"
TARBALL = Distro("debian", "bookworm").tarball_name
# Where a debootstrap tarball may already be (the tests' cache, the user's home).
TARBALL_CACHES = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "neurodesk-tests",
    Paths.from_env().cache / "base",
)

# Used when the checkout has no mrtrix3 recipe yet: Debian's package, as upstream's would be.
MRTRIX3_FALLBACK = {
    "name": "mrtrix3",
    "version": "3.0.4",
    "build": {
        "kind": "neurodocker",
        "base-image": BASE,
        "pkg-manager": "apt",
        "add-default-template": False,
        "directives": [{"install": "mrtrix3"}, {"environment": {"LANG": "C.UTF-8"}}],
    },
    "deploy": {"bins": ["mrconvert", "mrinfo"]},
    "categories": ["diffusion imaging"],
    "readme": "mrtrix3 {{ context.version }}",
}


def copy_recipe(name: str, dest: Path) -> Path:
    """The recipe in a scratch directory we may edit; mrtrix3 falls back to Debian's package."""
    dest.mkdir(parents=True)
    try:
        source = find_recipe(name)
    except NeurodeskError:
        if name != "mrtrix3":
            raise
        (dest / "build.yaml").write_text(yaml.safe_dump(MRTRIX3_FALLBACK, sort_keys=False))
        return dest / "build.yaml"
    shutil.copytree(source.parent, dest, dirs_exist_ok=True)
    return dest / "build.yaml"


def change_one_directive(recipe: Path, value: str) -> None:
    """Set BENCH_EDIT=<value> in the recipe's environment directive (appended if none)."""
    data = yaml.safe_load(recipe.read_text())
    directives = data["build"]["directives"]
    env = next((d for d in directives if "environment" in d), None)
    if env is None:
        env = {"environment": {}}
        directives.append(env)
    env["environment"]["BENCH_EDIT"] = value
    recipe.write_text(yaml.safe_dump(data, sort_keys=False))


def fresh_home(work: Path, tarball: Path) -> Path:
    """An empty NEURODESK_HOME whose buildah storage holds only the base image."""
    home = work / "home"
    shutil.rmtree(home, ignore_errors=True)
    base = home / "cache" / "base" / TARBALL
    base.parent.mkdir(parents=True)
    shutil.copyfile(tarball, base)
    paths = Paths(home)
    log = home / "logs" / "base.log"
    ensure_base(BuildahBuilder(paths), BASE, paths, log, lambda _m: None)
    return home


def find_tarball(work: Path) -> Path:
    for cache in TARBALL_CACHES:
        if (cache / TARBALL).is_file():
            return cache / TARBALL
    print("no cached debootstrap tarball: making one (about 30 s, not timed) ...", flush=True)
    paths = Paths(work / "seed")
    ensure_base(BuildahBuilder(paths), BASE, paths, work / "seed.log", print)
    return paths.cache / "base" / TARBALL


def timed_build(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time of one ``neurodesk build --json``, and the builder's own part of it."""
    wall, timings = timed_phases(argv, env)
    return wall, timings["build"]


def timed_phases(argv: list[str], env: dict[str, str]) -> tuple[float, dict[str, float]]:
    """Wall time of one ``neurodesk build --json`` and its phases (base, build, store, ...)."""
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
    wall = time.perf_counter() - start
    return wall, {k: float(v) for k, v in json.loads(proc.stdout)["timings"].items()}


PHASES = ("cold", "unchanged rebuild", "one directive")


def bench_recipe(
    name: str, runs: int, work: Path, tarball: Path
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall times and builder-step times per phase."""
    wall: dict[str, list[float]] = {p: [] for p in PHASES}
    steps: dict[str, list[float]] = {p: [] for p in PHASES}
    for run in range(runs):
        home = fresh_home(work, tarball)
        recipe = copy_recipe(name, work / f"recipe-{name}-{run}")
        env = dict(os.environ, NEURODESK_HOME=str(home), NEURODESK_OFFLINE="1")
        argv = [sys.executable, "-m", "neurodesk", "build", str(recipe), "--json"]
        for phase in PHASES:
            if phase == "one directive":
                change_one_directive(recipe, f"run{run}")
            total, builder = timed_build(argv, env)
            wall[phase].append(total)
            steps[phase].append(builder)
        print(
            f"  {name} run {run + 1}/{runs}: "
            + ", ".join(f"{p} {wall[p][-1]:.1f} s (steps {steps[p][-1]:.1f} s)" for p in PHASES),
            flush=True,
        )
    return wall, steps


def bench_quick(name: str, repeats: int, work: Path, tarball: Path) -> None:
    """One cold build, then ``repeats`` unchanged and one-directive rebuilds (medians)."""
    home = fresh_home(work, tarball)
    recipe = copy_recipe(name, work / f"recipe-{name}-quick")
    env = dict(os.environ, NEURODESK_HOME=str(home), NEURODESK_OFFLINE="1")
    argv = [sys.executable, "-m", "neurodesk", "build", str(recipe), "--json"]
    wall: dict[str, list[float]] = {p: [] for p in PHASES}
    phases: dict[str, list[dict[str, float]]] = {p: [] for p in PHASES}

    def one(phase: str) -> None:
        total, timings = timed_phases(argv, env)
        wall[phase].append(total)
        phases[phase].append(timings)
        print(f"  {name} {phase}: {total:.1f} s {timings}", flush=True)

    one("cold")
    for run in range(repeats):
        one("unchanged rebuild")
        change_one_directive(recipe, f"quick{run}")
        one("one directive")
    cold = statistics.median(wall["cold"])
    print(f"\nneurodesk build {name}: cold once, rebuilds x{repeats} (medians, seconds)")
    print(f"{'phase':<20} {'wall':>7} {'steps':>7} {'store':>7} {'ratio vs cold':>14}")
    for phase in PHASES:
        median = statistics.median(wall[phase])
        steps = statistics.median(t.get("build", 0.0) for t in phases[phase])
        store = statistics.median(t.get("store", 0.0) for t in phases[phase])
        print(f"{phase:<20} {median:>7.2f} {steps:>7.2f} {store:>7.2f} {median / cold:>13.2f}x")
    print("steps = the builder's own steps; store = export of the image + store import")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs per recipe (default 3, min 2)")
    parser.add_argument("--recipes", default="dcm2niix,mrtrix3")
    parser.add_argument(
        "--quick", action="store_true", help="one cold build + 3 rebuilds of each recipe"
    )
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("buildah") is None:
        print("error: needs root and buildah (sudo apt-get install buildah)")
        return 1
    work = Path(tempfile.mkdtemp(prefix="nd-bench-build-"))
    try:
        tarball = find_tarball(work)
        if args.quick:
            recipes = args.recipes if "--recipes" in sys.argv else "dcm2niix"
            for name in recipes.split(","):
                bench_quick(name, 3, work, tarball)
            return 0
        runs = max(args.runs, 2)
        for name in args.recipes.split(","):
            wall, steps = bench_recipe(name, runs, work, tarball)
            title = (
                f"neurodesk build {name}, {runs} runs; cold = fresh buildah storage with the "
                "base image already present"
            )
            print_table(f"{title}: wall time", wall, baseline="cold")
            print_table(f"{title}: builder steps only (no export/store)", steps, baseline="cold")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
