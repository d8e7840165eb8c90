"""Time from ``install`` to the first command for a ~500 MB image (mrtrix3), against
``skopeo copy`` + ``umoci unpack`` of the same image from the same local registry (issue 7).

Both variants start from nothing (a fresh NEURODESK_HOME, an empty OCI directory), pull from
Debian's docker-registry on 127.0.0.1, and end when ``mrinfo --version`` has run: ours through
the installed wrapper, the baseline with a bare ``bwrap`` on umoci's rootfs (no wrapper
logic, so the comparison favours the baseline). Runs are interleaved.

Usage: python -m benchmarks.bench_fetch [--runs N] [--image NAME] [--command CMD]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.common import ensure_image, print_table
from neurodesk.catalog.collect import tree_size
from neurodesk.publish.registry import push_image
from neurodesk.store import Store


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


def timed(argvs: list[list[str]], env: dict[str, str] | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    out = ""
    for argv in argvs:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
        out = proc.stdout
    return time.perf_counter() - start, out


def ours(work: Path, source: str, spec: str, command: list[str]) -> float:
    home = work / "ndhome"
    env = dict(os.environ, NEURODESK_HOME=str(home))
    start = time.perf_counter()
    _t, out = timed(
        [[sys.executable, "-m", "neurodesk", "install", spec, "--from", source, "--insecure",
          "--json"]],
        env,
    )  # fmt: skip
    wrapper = Path(json.loads(out)["bin"]) / command[0]
    timed([[str(wrapper), *command[1:]]], env)
    elapsed = time.perf_counter() - start
    shutil.rmtree(home)
    return elapsed


def baseline(work: Path, reference: str, command: list[str]) -> float:
    oci, bundle = work / "oci", work / "bundle"
    elapsed, _ = timed(
        [
            ["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{reference}",
             f"oci:{oci}:bench"],
            ["umoci", "unpack", "--image", f"{oci}:bench", str(bundle)],
            ["bwrap", "--ro-bind", str(bundle / "rootfs"), "/", "--proc", "/proc", "--dev",
             "/dev", "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", *command],
        ]
    )  # fmt: skip
    shutil.rmtree(oci)
    shutil.rmtree(bundle)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs per variant (default 3)")
    parser.add_argument("--image", default="mrtrix3", help="recipe to build and fetch")
    parser.add_argument("--command", default="mrinfo --version", help="the first command")
    args = parser.parse_args()
    for tool in ("skopeo", "umoci", "/usr/bin/docker-registry"):
        if shutil.which(tool) is None:
            print(f"error: {tool} is not installed (apt-get install skopeo umoci docker-registry)")
            return 1
    paths, record = ensure_image(args.image)
    size = tree_size(record.rootfs)
    command = args.command.split()
    with tempfile.TemporaryDirectory(prefix="nd-bench-fetch-") as tmp:
        work = Path(tmp)
        (work / "registry").mkdir()
        registry, address = start_registry(work / "registry")
        try:
            pushed = push_image(Store(paths.store), record, f"{address}/bench", insecure=True)
            spec = f"{record.name}/{record.version}"
            samples: dict[str, list[float]] = {
                "skopeo copy + umoci unpack + bwrap": [],
                "neurodesk install + wrapper": [],
            }
            for _ in range(args.runs):
                samples["skopeo copy + umoci unpack + bwrap"].append(
                    baseline(work, pushed.reference, command)
                )
                samples["neurodesk install + wrapper"].append(
                    ours(work, f"{address}/bench", spec, command)
                )
        finally:
            registry.terminate()
            registry.wait()
    print_table(
        f"install to first '{args.command}', {record.id} ({size / 1e6:.0f} MB unpacked), "
        f"{args.runs} runs each, local registry",
        samples,
        baseline="skopeo copy + umoci unpack + bwrap",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
