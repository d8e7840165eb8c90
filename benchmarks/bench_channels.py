"""Install-to-first-command through each of upstream's channels, against the upstream way,
and ``neurodesk search`` over the whole catalog (issue 12).

Every channel is replicated on 127.0.0.1 (the test replicas: token-auth docker-registry with
the SIF attached as a referrer, two object-storage mirrors, a CVMFS-layout tree) holding one
container whose root filesystem carries ``--size-mb`` of incompressible payload. Each variant
starts from nothing (a fresh NEURODESK_HOME or an empty directory) and ends when ``fslhello``
has run:

* neurodesk: ``neurodesk install fsl --from CHANNEL`` then the installed wrapper;
* upstream's way: ``curl`` of the SIF + ``unsquashfs -o OFFSET`` + ``bwrap``;
  ``aria2c -x4`` over both mirrors + the same (when aria2c is installed);
  ``skopeo copy`` + ``umoci unpack`` + ``bwrap`` of the registry image.

The two object-storage mirrors are served by Debian's nginx (when installed; else the tests'
Python server), so every client is measured against the same fast server rather than against
a Python server sharing the machine's cores. The SIF download alone is then compared on the
same mirrors: our ranged download (hashed as it arrives, as every install does), ``aria2c -x4``
alone and followed by ``sha256sum`` (what it takes to know the same digest), and ``curl`` of one
mirror.

Runs are interleaved; the tables have medians and ratios (install: against curl+unsquashfs;
download: against aria2c -x4) and the load average. Then ``neurodesk search`` over upstream's
catalog (a generated apps.json of ~300 containers) against ``neurodesk --version``.

Under the download table: what our download did (medians): MB still to hash when its last
byte arrived, MB hashed by reading them back from the file, Range requests sent.

Usage: python -m benchmarks.bench_channels [--size-mb 64] [--runs 3] [--only download]
The lead's re-run (about 5 minutes on a quiet 2-core machine):
       python -m benchmarks.bench_channels --size-mb 1100 --runs 3
The download table alone (about 1.5 minutes): add --only download
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

from rich.console import Console
from rich.table import Table
from tests.httpserve import FileServer
from tests.integration.channel_replicas import (
    ID,
    NAME,
    TokenRegistry,
    TokenServer,
    make_rootfs,
    make_sif,
    make_tree,
    push_image,
    write_auth_file,
)
from tests.nginxserve import NginxMirrors, available
from tests.upstream_data import write_apps_json

from neurodesk.image.squashfs import sif_root_partition
from neurodesk.store.sifmount import unmount_all

# Our download alone, in a process of its own like the other clients: DEST SIZE URL...
# It prints what the download did (bytes left to hash at the last byte, read back, requests).
OURS = (
    "import sys, json; from pathlib import Path;"
    "from neurodesk.sources.http import HttpSettings;"
    "from neurodesk.sources.ranged import Stats, finish, ranged_download;"
    "dest = Path(sys.argv[1]); stats = Stats();"
    "digest, _ = ranged_download(sys.argv[3:], int(sys.argv[2]), dest, HttpSettings(),"
    " stats=stats);"
    "finish(dest, digest, None);"
    "print(json.dumps([stats.left_to_hash, stats.read_back, sum(stats.requests.values())]))"
)
BWRAP = ["bwrap", "--ro-bind", "{root}", "/", "--dev", "/dev", "--proc", "/proc"]


def run(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])}... failed: {proc.stderr[-800:]}")
    return proc.stdout


def bwrap_hello(root: Path) -> list[str]:
    return [a.replace("{root}", str(root)) for a in BWRAP] + ["/usr/bin/fslhello"]


class Bench:
    """The object-storage mirrors at once; the other channels (CVMFS tree, token registry with
    the image and its SIF referrer, catalog) only when :meth:`channels` is called."""

    def __init__(self, work: Path, size_mb: int) -> None:
        self.work = work
        self.rootfs = make_rootfs(work / "rootfs", payload=size_mb << 20)
        objects = work / "objects"
        objects.mkdir()
        self.sif = make_sif(self.rootfs, objects / f"{ID}.simg")
        self.nginx: NginxMirrors | None = None
        self.python_mirrors: list[FileServer] = []
        if available():
            self.nginx = NginxMirrors(objects, 2).__enter__()
            self.mirror_urls = self.nginx.urls
        else:
            self.python_mirrors = [FileServer(objects).__enter__() for _ in range(2)]
            self.mirror_urls = [m.url for m in self.python_mirrors]
        self.tokens: TokenServer | None = None
        self.registry_server: TokenRegistry | None = None
        self.count = 0
        self.ours: list[list[int]] = []  # what each of our downloads did (see OURS)

    def channels(self) -> None:
        work = self.work
        self.tree = make_tree(self.rootfs, work / "cvmfs")
        self.tokens = TokenServer(work).start()
        self.registry_server = TokenRegistry(work / "registry", self.tokens).start()
        self.registry = self.registry_server
        auth = write_auth_file(work / "auth.json", self.registry.address)
        (work / "blobs").mkdir()
        self.pushed = push_image(self.registry.address, self.rootfs, work / "blobs", auth)
        env = {**os.environ, "REGISTRY_AUTH_FILE": str(auth)}
        code = (
            "import sys; from pathlib import Path;"
            "from neurodesk.publish.sif_artifact import push_sif_artifact;"
            "from neurodesk.sources.registry import Registry, RegistryAddress;"
            f"r = Registry(RegistryAddress.parse('{self.registry.address}', insecure=True));"
            f"push_sif_artifact(r, '{self.pushed.repo}', '{self.pushed.tag}', "
            f"Path('{self.sif}'), '{ID}.sif')"
        )
        run([sys.executable, "-c", code], env)
        self.apps_json = write_apps_json(work / "apps.json")

    def stop(self) -> None:
        for mirror in self.python_mirrors:
            mirror.__exit__(None, None, None)
        if self.nginx is not None:
            self.nginx.__exit__(None, None, None)
        if self.registry_server is not None:
            self.registry_server.stop()
        if self.tokens is not None:
            self.tokens.stop()

    def fresh(self) -> Path:
        self.count += 1
        path = self.work / f"run{self.count}"
        path.mkdir()
        return path

    def home(self) -> tuple[Path, dict[str, str]]:
        home = self.fresh()
        reg = {"mirrors": [f"{self.registry.address}/neurodesk"], "insecure": True}
        defaults = {
            "cvmfs": {"mirrors": [str(self.tree)]},
            "sif-artifacts": reg,
            "object-storage": {"mirrors": self.mirror_urls},
            "registry-images": reg,
        }
        (home / "config.yaml").write_text(json.dumps({"defaults": defaults}))
        env = {
            **os.environ,
            "NEURODESK_HOME": str(home),
            "NEURODESK_CATALOG_URL": str(self.apps_json),
            "NO_PROXY": "127.0.0.1",
        }
        run([sys.executable, "-m", "neurodesk", "update"], env)
        return home, env

    def neurodesk(self, channel: str) -> float:
        home, env = self.home()
        start = time.perf_counter()
        run([sys.executable, "-m", "neurodesk", "install", NAME, "--from", channel], env)
        run([str(home / "installs" / "containers" / ID / "bin" / "fslhello")], env, home)
        return time.perf_counter() - start

    def curl_unsquashfs(self, aria: bool) -> float:
        where = self.fresh()
        sif = where / f"{ID}.simg"
        start = time.perf_counter()
        if aria:
            urls = [f"{url}{ID}.simg" for url in self.mirror_urls]
            run(["aria2c", "-q", "-x4", "-s4", "-d", str(where), "-o", sif.name, *urls])
        else:
            run(["curl", "-sfo", str(sif), f"{self.mirror_urls[0]}{ID}.simg"])
        offset = sif_root_partition(sif).offset
        run(["unsquashfs", "-q", "-n", "-o", str(offset), "-d", str(where / "root"), str(sif)])
        run(bwrap_hello(where / "root"))
        return time.perf_counter() - start

    def download(self, client: str) -> float:
        """The SIF from the object-storage mirrors into an empty directory, nothing else."""
        where = self.fresh()
        sif = where / f"{ID}.simg"
        urls = [f"{url}{ID}.simg" for url in self.mirror_urls]
        start = time.perf_counter()
        if client == "ours":
            out = run([sys.executable, "-c", OURS, str(sif), str(self.sif.stat().st_size), *urls])
            self.ours.append(json.loads(out))
        elif client.startswith("aria2c"):
            run(["aria2c", "-q", "-x4", "-s4", "-d", str(where), "-o", sif.name, *urls])
            if client.endswith("sha256sum"):
                run(["sha256sum", str(sif)])
        else:
            run(["curl", "-sfo", str(sif), urls[0]])
        elapsed = time.perf_counter() - start
        shutil.rmtree(where)
        return elapsed

    def skopeo_umoci(self) -> float:
        where = self.fresh()
        start = time.perf_counter()
        source = f"docker://{self.registry.address}/{self.pushed.repo}:{self.pushed.tag}"
        run(["skopeo", "copy", "--src-tls-verify=false", source, f"oci:{where / 'oci'}:x"])
        run(["umoci", "unpack", "--image", f"{where / 'oci'}:x", str(where / "bundle")])
        run(bwrap_hello(where / "bundle" / "rootfs"))
        return time.perf_counter() - start


def table(title: str, samples: dict[str, list[float]], baseline: str, unit: str = "s") -> None:
    scale = 1.0 if unit == "s" else 1e3
    base = statistics.median(samples[baseline])
    out = Table(title=title)
    for column in ("variant", "runs", f"median {unit}", f"ratio vs {baseline}"):
        out.add_column(column, justify="left" if column == "variant" else "right")
    for name, values in samples.items():
        median = statistics.median(values)
        out.add_row(name, str(len(values)), f"{median * scale:.2f}", f"{median / base:.2f}x")
    Console().print(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=64, help="payload in the image")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--search-runs", type=int, default=10)
    parser.add_argument(
        "--only", choices=["download", "install", "search"], help="run one of the three tables"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-channels-"))
    bench = Bench(work, args.size_mb)
    size = bench.sif.stat().st_size / 1e6
    server = "nginx" if bench.nginx is not None else "Python test server"
    try:
        if args.only in (None, "download"):
            clients = {
                "neurodesk (2 mirrors, sha256 on the way)": "ours",
                "curl (1 mirror)": "curl",
            }
            if shutil.which("aria2c"):
                clients["aria2c -x4 (2 mirrors)"] = "aria2c"
                clients["aria2c -x4 (2 mirrors) + sha256sum"] = "aria2c+sha256sum"
            got: dict[str, list[float]] = {name: [] for name in clients}
            for _ in range(args.runs):
                for name, client in clients.items():
                    got[name].append(bench.download(client))
            table(
                f"SIF download alone, {size:.0f} MB from {server} on loopback, "
                f"load {os.getloadavg()[0]:.1f}",
                got,
                "aria2c -x4 (2 mirrors)" if "aria2c -x4 (2 mirrors)" in got else "curl (1 mirror)",
            )
            left, back, asked = (statistics.median(x) for x in zip(*bench.ours, strict=True))
            print(
                f"neurodesk, medians: {left / 1e6:.0f} MB of {size:.0f} MB still to hash when "
                f"the last byte arrived; {back / 1e6:.0f} MB hashed by reading them back; "
                f"{asked:.0f} Range requests"
            )
        if args.only in (None, "install", "search"):
            bench.channels()
        if args.only in (None, "install"):
            install(bench, args.runs, size, server)
        if args.only in (None, "search"):
            search(bench, args.search_runs)
    finally:
        bench.stop()
        for image_dir in work.glob("run*/store/images/*"):
            unmount_all(image_dir)  # the first command mounted the SIF (squashfuse)
        shutil.rmtree(work, ignore_errors=True)


def install(bench: Bench, runs: int, size: float, server: str) -> None:
    variants = {
        "upstream: curl + unsquashfs": lambda: bench.curl_unsquashfs(aria=False),
        "neurodesk cvmfs (in place)": lambda: bench.neurodesk("cvmfs"),
        "neurodesk sif-artifacts": lambda: bench.neurodesk("sif-artifacts"),
        "neurodesk object-storage (2 mirrors)": lambda: bench.neurodesk("object-storage"),
        "neurodesk registry-images": lambda: bench.neurodesk("registry-images"),
        "upstream: skopeo + umoci": bench.skopeo_umoci,
    }
    if shutil.which("aria2c"):
        variants["upstream: aria2c -x4 (2 mirrors) + unsquashfs"] = lambda: bench.curl_unsquashfs(
            aria=True
        )
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(runs):
        for name, variant in variants.items():
            samples[name].append(variant())
    table(
        f"install to first command, {size:.0f} MB SIF (object storage: {server}), "
        f"load {os.getloadavg()[0]:.1f}",
        samples,
        "upstream: curl + unsquashfs",
    )


def search(bench: Bench, runs: int) -> None:
    _home, env = bench.home()
    samples: dict[str, list[float]] = {"neurodesk --version": [], "neurodesk search fsl": []}
    for _ in range(runs):
        for name, argv in (
            ("neurodesk --version", ["--version"]),
            ("neurodesk search fsl", ["search", "fsl"]),
        ):
            start = time.perf_counter()
            run([sys.executable, "-m", "neurodesk", *argv], env)
            samples[name].append(time.perf_counter() - start)
    added = statistics.median(samples["neurodesk search fsl"]) - statistics.median(
        samples["neurodesk --version"]
    )
    table(
        f"search over {len(json.loads(bench.apps_json.read_text()))} tools "
        f"(search itself: {added * 1e3:.0f} ms over start-up; goal < 100 ms)",
        samples,
        "neurodesk --version",
        unit="ms",
    )


if __name__ == "__main__":
    main()
