"""Image size (issue 16): the base layer, nifti-bin and dcm2niix, unpacked, against the goals.

Sizes are what ``neurodesk du`` counts: the bytes of every regular file of the root filesystem,
hard links once. Leftovers are files the slim policy (``neurodesk.recipe.slim``) says an image
does not carry: package lists and caches, package-manager logs, documentation other than
licences, manual and info pages, message translations.

Modes:

* default (about 3-5 minutes): a scratch NEURODESK_HOME; the base is the cached debootstrap
  tarball (the tests' cache or yours, else debootstrap makes one, about 30 s more), then
  nifti-bin and dcm2niix are built from their recipes (packages from the apt mirror);
* ``--home DIR``: reads the images already built in DIR's store and DIR's cached base (no build).

The "before" column holds the sizes measured on main before the slimming (commit 0440b4c: the
same recipes on the unslimmed debootstrap base); the goals are issue 16's.

Usage: python -m benchmarks.bench_image_size [--home DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from rich.console import Console
from rich.table import Table

from neurodesk.build.base import Distro
from neurodesk.build.build import build_recipe
from neurodesk.paths import Paths
from neurodesk.recipe import find_recipe, slim
from neurodesk.store import Store

BASE = Distro("debian", "bookworm")
IMAGES = ("nifti-bin", "dcm2niix")
MB = 1e6
# Issue 16's goals, in MB unpacked.
GOALS: dict[str, float] = {"base": 80, "base layer of nifti-bin": 80, "nifti-bin": 100}
# Measured on main at 0440b4c (the unslimmed base and install steps), same sizes as here.
BEFORE: dict[str, float] = {
    "base": 148.5,
    "base layer of nifti-bin": 148.5,
    "nifti-bin": 226.7,
    "dcm2niix": 299.3,
}
TARBALL_CACHES = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "neurodesk-tests",
    Paths.from_env().cache / "base",
)


@dataclass
class Size:
    name: str
    bytes: int
    files: int
    leftovers: list[str]
    seconds: float | None = None


def leftover(path: str) -> bool:
    """``path`` (relative to the root) is something a slim image does not carry."""
    return slim.excluded("/" + path) or any(fnmatchcase(path, p) for p in slim.LEFTOVERS)


def tree_size(name: str, root: Path, seconds: float | None = None) -> Size:
    inodes: dict[tuple[int, int], int] = {}
    found: list[str] = []
    for dirpath, _dirs, files in os.walk(root):
        for file in files:
            path = os.path.join(dirpath, file)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                inodes[(st.st_dev, st.st_ino)] = st.st_size
            if leftover(os.path.relpath(path, root)):
                found.append(os.path.relpath(path, root))
    return Size(name, sum(inodes.values()), len(inodes), sorted(found), seconds)


def tarball_size(name: str, tarball: Path) -> Size:
    total = files = 0
    found: list[str] = []
    with tarfile.open(tarball) as archive:
        for member in archive:
            path = member.name.removeprefix("./")
            if member.isreg():  # hard links are separate (LNKTYPE) members: counted once
                total += member.size
                files += 1
            if not member.isdir() and leftover(path):
                found.append(path)
    return Size(name, total, files, sorted(found))


def base_layer(store: Store, name: str) -> Size | None:
    """The first layer of ``name``'s OCI image as shipped (None when the store kept no blobs)."""
    record = store.resolve(name)
    manifest_path = store.blob_path(record.digest)
    if not manifest_path.is_file():
        return None
    layers = json.loads(manifest_path.read_text()).get("layers") or []
    blob = store.blob_path(layers[0]["digest"]) if layers else None
    if blob is None or not blob.is_file():
        return None
    try:
        return tarball_size(f"base layer of {name}", blob)
    except tarfile.TarError:  # a compression tarfile does not read (zstd)
        return None


def find_tarball() -> Path | None:
    for cache in TARBALL_CACHES:
        if (cache / BASE.tarball_name).is_file():
            return cache / BASE.tarball_name
    return None


def build_all(home: Path) -> list[Size]:
    seeded = find_tarball()
    base = home / "cache" / "base" / BASE.tarball_name
    base.parent.mkdir(parents=True, exist_ok=True)
    if seeded is not None:
        shutil.copyfile(seeded, base)
    else:
        print("no cached slim debootstrap tarball: debootstrap makes one (about 30 s)", flush=True)
    os.environ["NEURODESK_HOME"] = str(home)
    os.environ["NEURODESK_OFFLINE"] = "1"  # the base comes from the tarball, not a registry
    paths = Paths(home)
    sizes = []
    for name in IMAGES:
        print(f"building {name} ...", flush=True)
        start = time.perf_counter()
        record = build_recipe(find_recipe(name), paths).record
        sizes.append(tree_size(name, record.rootfs, time.perf_counter() - start))
    layer = base_layer(Store(paths.store), IMAGES[0])
    return [tarball_size("base", base), *([layer] if layer else []), *sizes]


def read_home(home: Path) -> list[Size]:
    paths = Paths(home)
    store = Store(paths.store)
    base = paths.cache / "base" / BASE.tarball_name
    if not base.is_file():
        raise SystemExit(f"error: {base} not found; build once without --home first")
    sizes = [tarball_size("base", base)]
    if layer := base_layer(store, IMAGES[0]):
        sizes.append(layer)
    for name in IMAGES:
        sizes.append(tree_size(name, store.resolve(name).rootfs))
    return sizes


def print_sizes(sizes: list[Size]) -> None:
    table = Table(title="Image size, unpacked (regular files, hard links once)")
    columns = ("image", "MB", "files", "leftovers", "goal MB", "vs goal", "before MB", "vs before")
    for column in (*columns, "build s"):  # the first build includes registering the base
        table.add_column(column, justify="left" if column == "image" else "right")
    for size in sizes:
        goal = GOALS.get(size.name)
        before = BEFORE.get(size.name) or None
        table.add_row(
            size.name,
            f"{size.bytes / MB:.1f}",
            str(size.files),
            str(len(size.leftovers)),
            f"{goal:.0f}" if goal else "-",
            f"{size.bytes / MB / goal:.2f}x" if goal else "-",
            f"{before:.1f}" if before else "-",
            f"{size.bytes / MB / before:.2f}x" if before else "-",
            f"{size.seconds:.0f}" if size.seconds is not None else "-",
        )
    Console(width=120).print(table)
    for size in sizes:
        if size.leftovers:
            shown = ", ".join(size.leftovers[:5])
            print(f"{size.name}: {len(size.leftovers)} leftovers, e.g. {shown}")
    missed = [s.name for s in sizes if (g := GOALS.get(s.name)) and s.bytes / MB > g]
    print("goals met" if not missed else f"goals missed: {', '.join(missed)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="read images already built in this home")
    parser.add_argument("--keep", action="store_true", help="keep the scratch home (printed)")
    args = parser.parse_args()
    if args.home is not None:
        print_sizes(read_home(args.home))
        return 0
    if os.geteuid() != 0 or shutil.which("buildah") is None:
        print("error: building needs root and buildah (or pass --home DIR of built images)")
        return 1
    work = Path(tempfile.mkdtemp(prefix="nd-bench-size-"))
    try:
        print_sizes(build_all(work / "home"))
    finally:
        if args.keep:
            print(f"kept {work / 'home'} (read it again with --home)")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
