"""SIF images (issue 13): time to the first command, bytes fetched, per-call overhead.

For SIFs of the dcm2niix image padded with random data no command reads, at each size (GB):

1. time to first command, from an empty NEURODESK_HOME to ``dcm2niix -h`` through its wrapper,
   the SIF served over HTTP on 127.0.0.1 by nginx (byte ranges, keep-alive, as object storage;
   Python's own Range server when nginx is missing, said in the title):
   - lazy:             ``neurodesk install --lazy --from URL``, then the command;
   - download+unsquash: download the whole SIF, ``neurodesk import`` it unpacked
                        (``NEURODESK_FUSE=off``: unsquashfs -o OFFSET), install, the command;
   - download+mount:    download, ``neurodesk import`` (kept as a SIF, squashfuse), install,
                        the command;
2. the bytes the server sent for the lazy first command, as a share of the image;
3. steady-state per-call time of the wrapper on a mounted SIF vs an unpacked image.

Needs root (or setuid fusermount3), squashfuse, httpdirfs, mksquashfs, bwrap, nginx. Usage:
    python -m benchmarks.bench_sif [--sizes 0.5,1.5,3] [--runs 3] [--calls 30]
    python -m benchmarks.bench_sif --quick      # one round at 0.5, 1.5 and 3 GB, 10 calls
    python -m benchmarks.bench_sif --lazy-only --sizes 0.5,3 [--lazy-cache]   # lazy rows only
The httpdirfs is the one lazy installs choose (store/httpdirfs.py; NEURODESK_HTTPDIRFS=PATH
picks another, e.g. /usr/bin/httpdirfs for Debian 12's 1.2.5); --lazy-cache turns its block
cache on (config ``lazy_cache: true``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table
from tests.integration.sif_helpers import NginxServer, RangeServer, mounts_under, padded_sif

from benchmarks.common import ensure_image, interleaved, print_table
from neurodesk.store import httpdirfs

ID = "dcm2niix_1.0.20220720_20260101"


def cli(home: Path, *args: str, env: dict[str, str] | None = None) -> None:
    full = dict(os.environ, NEURODESK_HOME=str(home), **(env or {}))
    subprocess.run(
        [sys.executable, "-m", "neurodesk", *args],
        env=full,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wrapper(home: Path) -> Path:
    return next((home / "installs" / "containers").glob("*/bin/dcm2niix"))


def first_command(home: Path) -> None:
    subprocess.run([str(wrapper(home)), "-h"], check=True, stdout=subprocess.DEVNULL)


def download(url: str, dest: Path) -> None:
    with httpx.stream("GET", url, timeout=60) as response, dest.open("wb") as out:
        for chunk in response.iter_bytes(1 << 20):
            out.write(chunk)


def cleanup(home: Path) -> None:
    for point in reversed(mounts_under(home)):
        subprocess.run(["fusermount3", "-u", "-z", point], check=False)
    subprocess.run(["rm", "-rf", str(home)], check=False)


Server = NginxServer | RangeServer


def end_remotes(home: Path) -> None:
    from neurodesk.store.sifmount import end_remote

    for image_dir in (home / "store" / "images").glob("*"):
        end_remote(image_dir)


def run_lazy(server: Server, url: str, work: Path, cache: bool = False) -> tuple[float, float, int]:
    """(install + first command, first command alone, bytes sent) for a lazy install."""
    home = Path(tempfile.mkdtemp(dir=work, prefix="lazy-"))
    if cache:
        (home / "config.yaml").write_text("lazy_cache: true\n")
    before = server.bytes_sent
    start = time.perf_counter()
    cli(home, "install", "dcm2niix", "--lazy", "--from", url)
    installed = time.perf_counter()
    first_command(home)
    end = time.perf_counter()
    sent = server.bytes_sent - before
    end_remotes(home)
    cleanup(home)
    return end - start, end - installed, sent


def run_download(url: str, work: Path, mount: bool) -> float:
    home = Path(tempfile.mkdtemp(dir=work, prefix="dl-"))
    env = {} if mount else {"NEURODESK_FUSE": "off"}
    start = time.perf_counter()
    sif = home / f"{ID}.sif"
    download(url, sif)
    cli(home, "import", str(sif), env=env)
    cli(home, "install", "dcm2niix", env=env)
    first_command(home)
    elapsed = time.perf_counter() - start
    cleanup(home)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0.5,1.5,3", help="SIF sizes in GB, comma-separated")
    parser.add_argument("--runs", type=int, default=3, help="rounds per size (interleaved)")
    parser.add_argument("--calls", type=int, default=30, help="calls for the per-call overhead")
    parser.add_argument(
        "--quick", action="store_true", help="one round per size and 10 calls (about 5 minutes)"
    )
    parser.add_argument(
        "--lazy-only", action="store_true", help="only the lazy install (no downloads, no calls)"
    )
    parser.add_argument(
        "--lazy-cache", action="store_true", help="lazy installs with httpdirfs's block cache"
    )
    args = parser.parse_args()
    tool = httpdirfs.find()
    if args.quick:
        args.runs, args.calls = 1, 10
    paths, record = ensure_image("dcm2niix")
    work = Path(tempfile.mkdtemp(prefix="nd-bench-sif-"))
    server: Server
    try:
        server = NginxServer(work)
        served_by = "nginx"
    except (OSError, RuntimeError):
        server = RangeServer(work)
        served_by = "Python's Range server (no nginx)"
    rows: list[tuple[str, ...]] = []
    try:
        base = padded_sif(record.rootfs, work / "base.sif", record.env, 0).stat().st_size
        for size_gb in (float(s) for s in args.sizes.split(",")):
            target = int(size_gb * 1e9)
            sif = padded_sif(record.rootfs, work / f"{ID}.sif", record.env, max(0, target - base))
            digest = subprocess.run(
                ["sha256sum", str(sif)], capture_output=True, text=True, check=True
            ).stdout.split()[0]
            (work / f"{ID}.sif.sha256").write_text(digest + "\n")
            url = server.url(sif.name)
            lazy, first, unsquash, mount, sent = [], [], [], [], []
            for _ in range(args.runs):
                elapsed, call, fetched = run_lazy(server, url, work, args.lazy_cache)
                lazy.append(elapsed)
                first.append(call)
                sent.append(fetched)
                if args.lazy_only:
                    continue
                unsquash.append(run_download(url, work, mount=False))
                mount.append(run_download(url, work, mount=True))
            size = sif.stat().st_size
            med = statistics.median
            rows.append(
                (
                    f"{size / 1e9:.2f}",
                    f"{med(lazy):.2f}",
                    f"{med(first):.2f}",
                    f"{med(unsquash):.2f}" if unsquash else "-",
                    f"{med(mount):.2f}" if mount else "-",
                    f"{med(unsquash) / med(lazy):.1f}x" if unsquash else "-",
                    f"{med(sent) / 1e6:.1f}",
                    f"{100 * med(sent) / size:.2f}%",
                )
            )
        table = Table(
            title=f"time to first command (median of {args.runs}), dcm2niix -h, "
            f"SIF served by {served_by}, httpdirfs {tool.version_text if tool else '(none)'}"
            f"{' with its cache' if args.lazy_cache else ''}"
        )
        for column in (
            "SIF GB",
            "lazy s",
            "of which 1st call s",
            "download+unsquashfs s",
            "download+mount s",
            "unsquashfs/lazy",
            "lazy MB fetched",
            "share of image",
        ):
            table.add_column(column, justify="right")
        for row in rows:
            table.add_row(*row)
        Console(width=150).print(table)
        if args.lazy_only:
            return
        # Steady state: the same wrapper on a mounted SIF and on the unpacked image.
        mounted_home = Path(tempfile.mkdtemp(dir=work, prefix="mounted-"))
        cli(mounted_home, "import", str(work / "base.sif"), "--name", "dcm2niix", "--version", "1")
        cli(mounted_home, "install", "dcm2niix")
        unpacked = paths.home
        cli(unpacked, "install", "dcm2niix")
        samples = interleaved(
            {
                "unpacked image": [str(wrapper(unpacked)), "-h"],
                "mounted SIF": [str(wrapper(mounted_home)), "-h"],
            },
            args.calls,
        )
        print_table("per call: wrapper + dcm2niix -h", samples, "unpacked image")
        cleanup(mounted_home)
    finally:
        server.close()
        cleanup(work)


if __name__ == "__main__":
    main()
