"""Time from ``install`` to the first command for an image of at least 500 MB, pulled from a
registry on loopback, against ``skopeo copy`` + ``umoci unpack`` of the same image and against
the physical floor, all measured in one run, interleaved (issue 16).

Three variants, each from nothing (a fresh NEURODESK_HOME, an empty directory), each ending when
the first command has run:

- ``neurodesk install`` + the installed wrapper;
- ``skopeo copy`` + ``umoci unpack`` + a bare ``bwrap`` on umoci's rootfs (no wrapper logic);
- the floor: ``curl`` of the same blobs (all at once) + ``tar -x`` of each layer in order through
  the fastest gzip decoder found here (igzip, pigz or gzip, timed on the largest layer first),
  + the same bare ``bwrap``. No digest is checked and no safety check is made: nothing can be
  faster.

The image is by default generated (``--padded MB``, cached under ~/.cache/neurodesk-bench): the
Debian base that recipes build on (debootstrap, ~150 MB, ~6,800 entries) plus a "tool" layer of
~20,000 small files (hex text and zeros, ~3.5x compressible, a tenth of them duplicates) and a
"data" layer of large incompressible files, with one deployed command ``padinfo``. ``--image
RECIPE`` instead builds a recipe (mrtrix3: several minutes) and times ``--command``.

Each variant's files are kept until the run ends, and each variant starts after a ``sync``: see
``discard``. Leave a few minutes between two runs for the same reason (the end of a run deletes
every variant's tree at once).

Usage: python -m benchmarks.bench_fetch [--runs N] [--padded MB | --image NAME --command CMD]
                                        [--before OTHER_CHECKOUT/src]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import IO

import httpx

from benchmarks.common import ensure_image, print_table
from neurodesk.catalog.collect import tree_size
from neurodesk.publish.registry import push_image
from neurodesk.store import Store

BENCH_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "neurodesk-bench"
BASE_TARBALLS = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "neurodesk-tests",
    BENCH_CACHE,
)
PADDED = ("padded", "1.0", "20260101")
MTIME = 1767225600  # 2026-01-01
OURS = "neurodesk install + wrapper"
SKOPEO = "skopeo copy + umoci unpack + bwrap"
FLOOR = "floor: curl + tar -x ({decoder}) + bwrap"


def start_registry(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = root / "config.yml"
    config.write_text(
        f"version: 0.1\nlog: {{level: error}}\n"
        f"storage: {{filesystem: {{rootdirectory: {root / 'storage'}}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
    )
    log = (root / "registry.log").open("wb")
    proc = subprocess.Popen(
        ["/usr/bin/docker-registry", "serve", str(config)], stdout=log, stderr=log
    )
    for _ in range(200):
        try:
            httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    return proc, f"127.0.0.1:{port}"


def run(argv: list[str], env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    return proc.stdout


def bwrap(rootfs: Path, command: list[str]) -> list[str]:
    return ["bwrap", "--ro-bind", str(rootfs), "/", "--proc", "/proc", "--dev", "/dev",
            "--clearenv", "--setenv", "PATH", "/opt/pad/bin:/usr/bin:/bin", *command]  # fmt: skip


# -- the generated image -------------------------------------------------------------------------
class _Hashing(io.RawIOBase):
    """A write-only stream that hashes what passes (the layer's diff_id) on its way to ``out``."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.digest = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.digest.update(data)
        self.out.write(data)
        return len(data)


def _base_tarball() -> Path:
    for folder in BASE_TARBALLS:
        if (folder / "debian-bookworm.tar").is_file():
            return folder / "debian-bookworm.tar"
    from neurodesk.build.base import debootstrap_tarball, parse_base
    from neurodesk.paths import Paths

    distro = parse_base("debian:bookworm")
    assert distro is not None
    BENCH_CACHE.mkdir(parents=True, exist_ok=True)
    made = debootstrap_tarball(distro, Paths.from_env(), BENCH_CACHE / "debootstrap.log", print)
    shutil.copyfile(made, BENCH_CACHE / "debian-bookworm.tar")
    return BENCH_CACHE / "debian-bookworm.tar"


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"", mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = MTIME
    if name.endswith("/"):
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
        return
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def _tool_files(total: int, rng: random.Random) -> list[tuple[str, bytes]]:
    """~12 KB files of hex text and zeros (like binaries and scripts); one in ten a duplicate."""
    files: list[tuple[str, bytes]] = []
    size = 0
    while size < total:
        n = min(int(rng.lognormvariate(9.0, 1.0)) + 64, 1 << 20)
        if files and rng.random() < 0.1:
            data = rng.choice(files)[1]
        else:
            data = os.urandom(n // 4).hex().encode() + bytes(n - 2 * (n // 4))
        files.append((f"opt/pad/lib/d{len(files) // 500:03d}/f{len(files):06d}.so", data))
        size += len(data)
    return files


def _write_layer(blobs: Path, fill: object) -> tuple[dict[str, object], str]:
    """Write one gzip layer via ``fill(tar)``; its descriptor and diff_id."""
    from isal import igzip

    part = blobs / "layer.part"
    with part.open("wb") as raw, igzip.open(raw, "wb", compresslevel=2) as gz:
        hashing = _Hashing(gz)  # type: ignore[arg-type]
        with tarfile.open(fileobj=hashing, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            fill(tar)  # type: ignore[operator]
    digest = hashlib.sha256(part.read_bytes()).hexdigest()
    size = part.stat().st_size
    part.replace(blobs / digest)
    media = "application/vnd.oci.image.layer.v1.tar+gzip"
    return {"mediaType": media, "digest": f"sha256:{digest}", "size": size}, (
        "sha256:" + hashing.digest.hexdigest()
    )


def padded_layout(megabytes: int) -> Path:
    """An OCI layout (tag ``bench``) of the generated image, made once and cached."""
    layout = BENCH_CACHE / f"padded-{megabytes}"
    if (layout / "index.json").is_file():
        return layout
    print(f"generating a padded image of ~{megabytes} MB in {layout} ...", flush=True)
    shutil.rmtree(layout, ignore_errors=True)
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    rng = random.Random(16)
    base = _base_tarball()
    pad = max(megabytes - 150, 100) << 20

    def base_layer(tar: tarfile.TarFile) -> None:
        with tarfile.open(base) as source:
            for member in source:
                stream = source.extractfile(member) if member.isfile() else None
                tar.addfile(member, stream)

    def tool_layer(tar: tarfile.TarFile) -> None:
        for folder in ("opt/", "opt/pad/", "opt/pad/bin/", "opt/pad/lib/"):
            _add(tar, folder)
        script = b'#!/bin/sh\necho "padinfo: $(ls /opt/pad/lib | wc -l) folders"\n'
        _add(tar, "opt/pad/bin/padinfo", script, 0o755)
        made: set[str] = set()
        for name, data in _tool_files(pad * 3 // 5, rng):
            folder = name.rsplit("/", 1)[0] + "/"
            if folder not in made:
                made.add(folder)
                _add(tar, folder)
            _add(tar, name, data, 0o755 if name.endswith("0.so") else 0o644)

    def data_layer(tar: tarfile.TarFile) -> None:
        _add(tar, "opt/pad/data/")
        for index in range(max(pad * 2 // 5 // (16 << 20), 1)):
            _add(tar, f"opt/pad/data/atlas{index:02d}.nii", os.urandom(16 << 20))

    layers, diff_ids = [], []
    for fill in (base_layer, tool_layer, data_layer):
        descriptor, diff_id = _write_layer(blobs, fill)
        layers.append(descriptor)
        diff_ids.append(diff_id)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/opt/pad/bin:/usr/bin:/bin", "DEPLOY_BINS=padinfo"],
            "Labels": {"org.neurodesk.bench": "padded"},
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": _blob(blobs, json.dumps(config).encode(), "config.v1+json"),
        "layers": layers,
    }
    top = _blob(blobs, json.dumps(manifest).encode(), "manifest.v1+json")
    top["annotations"] = {"org.opencontainers.image.ref.name": "bench"}
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))
    return layout


def _blob(blobs: Path, data: bytes, kind: str) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    media = f"application/vnd.oci.image.{kind}"
    return {"mediaType": media, "digest": f"sha256:{digest}", "size": len(data)}


FOOTPRINTS: list[float] = []  # store footprint / unpacked size after each of our installs


# -- the variants --------------------------------------------------------------------------------
def discard(path: Path) -> None:
    """Set a variant's files aside until the end of the run instead of deleting them.

    On ext4 without a journal (this machine's root file system), an inode freed less than a
    minute ago (five, while its inode table block is dirty) is skipped when a new file needs
    one: right after a tree of ~30,000 files is deleted, creating files costs several times more
    kernel time (seen: `tar -x` of the same layers 3.9 s, then 21-27 s after a `rm -rf`), and
    the next variant would pay for the previous one's cleanup."""
    trash = path.parent / "trash"
    trash.mkdir(exist_ok=True)
    path.rename(trash / f"{path.name}-{time.monotonic_ns()}")


def ours(
    work: Path, source: str, spec: str, command: list[str], before: Path | None = None
) -> float:
    """``before``: the ``src`` directory of another checkout, run instead of this one."""
    home = work / "ndhome"
    env = dict(os.environ, NEURODESK_HOME=str(home))
    if before is not None:
        env["PYTHONPATH"] = str(before)
    start = time.perf_counter()
    out = run([sys.executable, "-m", "neurodesk", "install", spec, "--from", source, "--insecure",
               "--json"], env)  # fmt: skip
    wrapper = Path(json.loads(out)["bin"]) / command[0]
    run([str(wrapper), *command[1:]], env)
    elapsed = time.perf_counter() - start
    du = json.loads(run([sys.executable, "-m", "neurodesk", "du", "--json"], env))
    if before is None:
        FOOTPRINTS.append(float(du["footprint_ratio"]))  # not timed
    discard(home)
    return elapsed


def baseline(work: Path, reference: str, command: list[str]) -> float:
    oci, bundle = work / "oci", work / "bundle"
    start = time.perf_counter()
    run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{reference}",
         f"oci:{oci}:bench"])  # fmt: skip
    run(["umoci", "unpack", "--image", f"{oci}:bench", str(bundle)])
    run(bwrap(bundle / "rootfs", command))
    elapsed = time.perf_counter() - start
    discard(oci)
    discard(bundle)
    return elapsed


def floor(work: Path, urls: list[str], decoder: str, command: list[str]) -> float:
    blobs, rootfs = work / "floor-blobs", work / "floor-root"
    blobs.mkdir()
    rootfs.mkdir()
    start = time.perf_counter()
    files = [blobs / f"layer{i}" for i in range(len(urls))]
    curls = [
        subprocess.Popen(["curl", "-sf", "-o", str(f), u]) for f, u in zip(files, urls, strict=True)
    ]
    if any(c.wait() != 0 for c in curls):
        raise SystemExit("curl failed")
    for layer in files:
        through = [] if decoder == "cat" else ["-I", decoder]  # "cat": uncompressed layers
        run(["tar", "-x", "-C", str(rootfs), "--numeric-owner", *through, "-f", str(layer)])
    run(bwrap(rootfs, command))
    elapsed = time.perf_counter() - start
    discard(blobs)
    discard(rootfs)
    return elapsed


def fastest_decoder(layer: Path) -> str:
    """The quickest gzip decoder installed here, timed on ``layer`` (to /dev/null)."""
    timings = {}
    for decoder in ("igzip -d", "pigz -d", "gzip -d"):
        if shutil.which(decoder.split()[0]) is None:
            continue
        start = time.perf_counter()
        with layer.open("rb") as source:
            subprocess.run([*decoder.split(), "-c"], stdin=source, stdout=subprocess.DEVNULL,
                           check=True)  # fmt: skip
        timings[decoder] = time.perf_counter() - start
    print("gzip decoders on the largest layer: "
          + ", ".join(f"{d} {t:.2f} s" for d, t in timings.items()), flush=True)  # fmt: skip
    return min(timings, key=timings.__getitem__)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs per variant (default 3, >= 2)")
    parser.add_argument("--padded", type=int, default=560, metavar="MB",
                        help="generate an image of about MB megabytes (default 560)")  # fmt: skip
    parser.add_argument("--image", help="build this recipe instead (e.g. mrtrix3; slow)")
    parser.add_argument("--command", default="", help="the first command (--image only)")
    parser.add_argument("--before", metavar="SRC",
                        help="also time the install of another checkout's src directory (e.g. "
                        "one made with git archive), interleaved in the same run")  # fmt: skip
    args = parser.parse_args()
    args.runs = max(args.runs, 2)
    for tool in ("skopeo", "umoci", "/usr/bin/docker-registry", "curl", "bwrap"):
        if shutil.which(tool) is None:
            print(f"error: {tool} is not installed (apt-get install skopeo umoci "
                  "docker-registry curl bubblewrap)")  # fmt: skip
            return 1
    with tempfile.TemporaryDirectory(prefix="nd-bench-fetch-") as tmp:
        work = Path(tmp)
        (work / "registry").mkdir()
        registry, address = start_registry(work / "registry")
        try:
            if args.image:
                paths, record = ensure_image(args.image)
                label = f"{record.id} ({tree_size(record.rootfs) / 1e6:.0f} MB unpacked)"
                pushed = push_image(Store(paths.store), record, f"{address}/bench", insecure=True)
                reference, layout = pushed.reference, paths.store
                spec, command = f"{record.name}/{record.version}", args.command.split()
                manifest = json.loads(run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                                           f"docker://{reference}"]))  # fmt: skip
                # the store drops a built image's blobs (it rebuilds them to push): the decoder
                # is chosen on the largest layer as the registry holds it
                layer_files = []
                for i, d in enumerate(manifest["layers"]):
                    path = work / f"pushed-layer{i}"
                    repo = reference.split("/", 1)[1].rsplit(":", 1)[0]
                    run(["curl", "-sfo", str(path),
                         f"http://{address}/v2/{repo}/blobs/{d['digest']}"])  # fmt: skip
                    layer_files.append(path)
            else:
                layout = padded_layout(args.padded)
                name, version, date = PADDED
                reference = f"{address}/bench/{name}_{version}:{date}"
                run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:bench",
                     f"docker://{reference}"])  # fmt: skip
                index = json.loads((layout / "index.json").read_text())
                top = index["manifests"][0]["digest"].removeprefix("sha256:")
                manifest = json.loads((layout / "blobs" / "sha256" / top).read_text())
                layer_files = [layout / "blobs/sha256" / d["digest"][7:] for d in
                               manifest["layers"]]  # fmt: skip
                spec, command = f"{name}/{version}", ["padinfo"]
                label = f"{name}_{version}_{date} (generated, ~{args.padded} MB unpacked)"
            repo = reference.split("/", 1)[1].rsplit(":", 1)[0]
            urls = [f"http://{address}/v2/{repo}/blobs/{d['digest']}" for d in manifest["layers"]]
            compressed = sum(int(d["size"]) for d in manifest["layers"])
            if all(str(d["mediaType"]).endswith(".tar") for d in manifest["layers"]):
                decoder = "cat"  # uncompressed layers (a built image, as the store pushes it)
            else:
                decoder = fastest_decoder(max(layer_files, key=lambda p: p.stat().st_size))
            floor_name = FLOOR.format(decoder=decoder)
            samples: dict[str, list[float]] = {SKOPEO: [], OURS: [], floor_name: []}
            before_name = f"{OURS}, before ({args.before})"
            if args.before:
                samples[before_name] = []
            for _ in range(args.runs):
                # each variant starts with nothing of the previous one left to write back
                os.sync()
                samples[SKOPEO].append(baseline(work, reference, command))
                os.sync()
                samples[OURS].append(ours(work, f"{address}/bench", spec, command))
                if args.before:
                    os.sync()
                    samples[before_name].append(
                        ours(work, f"{address}/bench", spec, command, Path(args.before))
                    )
                os.sync()
                samples[floor_name].append(floor(work, urls, decoder, command))
                print("run: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in samples.items()),
                      flush=True)  # fmt: skip
        finally:
            registry.terminate()
            registry.wait()
    load = os.getloadavg()
    print_table(
        f"install to first '{' '.join(command)}', {label}, {compressed / 1e6:.0f} MB of layers, "
        f"{args.runs} runs each, local registry, load {load[0]:.2f}",
        samples,
        baseline=SKOPEO,
    )
    median = {name: statistics.median(values) for name, values in samples.items()}
    print(f"ours / (skopeo + umoci): {median[OURS] / median[SKOPEO]:.2f}x (goal <= 0.30x)")
    print(f"ours / floor:            {median[OURS] / median[floor_name]:.2f}x (goal <= 1.50x)")
    if args.before:
        print(f"before / floor:          {median[before_name] / median[floor_name]:.2f}x")
        print(f"ours / before:           {median[OURS] / median[before_name]:.2f}x")
    footprint = statistics.median(FOOTPRINTS)
    print(f"store footprint / unpacked after install: {footprint:.2f}x (goal <= 1.10x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
