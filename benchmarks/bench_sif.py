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
3. steady-state per-call time of the wrapper on a mounted SIF vs an unpacked image (goal: within
   1 ms): interleaved medians, CPU time per call (user+sys of the call's processes, plus the
   squashfuse daemon's, which is no child of ours), and the floor under the wrapper: the same
   bwrap command line run bare on each tree. The calls run in a scratch directory outside the
   image, as a user's data directory would be. The FUSE requests of one call are counted on a
   debug mount (squashfuse -d) of the same SIF.

Needs root (or setuid fusermount3), squashfuse, httpdirfs, mksquashfs, bwrap, nginx. Usage:
    python -m benchmarks.bench_sif [--sizes 0.5,1.5,3] [--runs 3] [--calls 300]
    python -m benchmarks.bench_sif --quick      # one round at 0.5, 1.5 and 3 GB, 100 calls
    python -m benchmarks.bench_sif --lazy-only --sizes 0.5,3 [--lazy-cache]   # lazy rows only
    python -m benchmarks.bench_sif --calls-only [--calls 300]   # per-call rows only (~1 minute)
    python -m benchmarks.bench_sif --calls-only --levers   # + the SIF mounted as before, and
                                                           #   with one mount option at a time
The httpdirfs is the one lazy installs choose (store/httpdirfs.py; NEURODESK_HTTPDIRFS=PATH
picks another, e.g. /usr/bin/httpdirfs for Debian 12's 1.2.5); --lazy-cache turns its block
cache on (config ``lazy_cache: true``).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
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

from benchmarks.common import ensure_image
from neurodesk.paths import Paths
from neurodesk.store import ImageRecord, httpdirfs, sifmount

ID = "dcm2niix_1.0.20220720_20260101"
GOAL_MS = 1.0  # issue 13: a mounted SIF within 1 ms per call of the unpacked image


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


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def daemon_pid(image_dir: Path) -> int | None:
    """The squashfuse that serves ``image_dir``'s mount (not a child of ours)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if os.path.basename(argv[0]).startswith(b"squashfuse") and any(
            a.startswith(str(image_dir).encode()) for a in argv
        ):
            return int(cmdline.parent.name)
    return None


def cpu_seconds(pid: int | None) -> float:
    """CPU time of ``pid`` in ns-precise schedstat, summed over its threads (squashfuse 0.1.x
    runs one; libfuse keeps idle workers of a multi-threaded one), 0 without one."""
    if pid is None:
        return 0.0
    total = 0
    for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(task.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e9


def time_calls(
    variants: dict[str, list[str]], calls: int, cwd: Path, daemons: dict[str, int | None]
) -> tuple[dict[str, list[float]], dict[str, float], dict[str, float]]:
    """Each variant ``calls`` times, interleaved: wall times, CPU s per call of the call's own
    processes (user+sys of children, which load does not inflate) and of its daemon."""
    for argv in variants.values():  # warm every cache once
        subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, check=True)
    wall: dict[str, list[float]] = {name: [] for name in variants}
    cpu = dict.fromkeys(variants, 0.0)
    daemon = dict.fromkeys(variants, 0.0)
    for _ in range(calls):
        for name, argv in variants.items():
            pid = daemons.get(name)
            served = cpu_seconds(pid)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, check=True)
            wall[name].append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name] += after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
            daemon[name] += cpu_seconds(pid) - served  # (its RELEASEs may land in the next call)
    return (
        wall,
        {name: total / calls for name, total in cpu.items()},
        {name: total / calls for name, total in daemon.items()},
    )


def bare_bwrap(wrapper_path: Path, cwd: Path) -> list[str] | None:
    """The bwrap command line the wrapper runs (NEURODESK_WRAPPER_PRINT), to run without it;
    None when it needs file descriptors the wrapper opens (made-up passwd/group)."""
    out = subprocess.run(
        [str(wrapper_path), "-h"],
        cwd=cwd,
        env=dict(os.environ, NEURODESK_WRAPPER_PRINT="1"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return None if "--ro-bind-data" in out else out


def fuse_requests(image_dir: Path, argv: list[str], cwd: Path, mount: list[str]) -> str:
    """The FUSE requests of one warm call, counted on a debug mount (``mount`` with -f -d) of
    the same SIF stacked on the image's mount (the wrapper then reads through it)."""
    point = Path(mount[-1])
    log = image_dir.parent / f"fuse-debug-{image_dir.name}.log"
    with log.open("w") as out:
        daemon = subprocess.Popen([mount[0], "-f", "-d", *mount[1:]], stderr=out)
    try:
        for _ in range(50):
            if len(mounts_under(point)) >= 2:
                break
            time.sleep(0.1)
        for _ in range(2):  # the first calls fill the kernel's caches
            subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, check=True)
        mark = log.stat().st_size
        subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, check=True)
        time.sleep(0.3)  # RELEASEs are sent after the call ends
        with log.open() as handle:
            handle.seek(mark)
            ops = re.findall(r"opcode: ([A-Z_]+)", handle.read())
    finally:
        subprocess.run(["fusermount3", "-u", "-z", str(point)], check=False)
        daemon.wait(timeout=10)
        log.unlink(missing_ok=True)
    counts: dict[str, int] = {}
    for op in ops:
        counts[op] = counts.get(op, 0) + 1
    listed = ", ".join(f"{n} {op}" for op, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return f"{len(ops)} ({listed})" if ops else "0"


def mount_argv(image_dir: Path, lever: str | None) -> list[str]:
    """How the image is mounted: as mount.sh does (None), or by one of LEVERS."""
    meta = sifmount.SifMeta.load(image_dir)
    assert meta is not None
    point = image_dir / os.readlink(image_dir / sifmount.ROOTFS)
    source = image_dir / sifmount.SIF_FILE
    if lever is None:
        return sifmount.squashfuse_argv(meta.offset, source, point)
    name, options = LEVERS[lever]
    return [name, "-o", f"{options}offset={meta.offset}", str(source), str(point)]


# --levers: the same image mounted as before this work, and with one lever at a time.
_LONG = 365 * 24 * 3600
LEVERS = {
    "squashfuse, libfuse defaults (before)": ("squashfuse", ""),
    "squashfuse, kernel_cache only": ("squashfuse", "kernel_cache,"),
    "squashfuse, ro + long timeouts + kernel_cache": (
        "squashfuse",
        f"ro,kernel_cache,entry_timeout={_LONG},attr_timeout={_LONG},negative_timeout={_LONG},",
    ),
    "squashfuse_ll, rw": ("squashfuse_ll", ""),
}


def run_calls(
    paths: Paths, record: ImageRecord, work: Path, calls: int, levers: bool = False
) -> None:
    """Steady state: the same wrapper on a mounted SIF and on the unpacked image, and bare bwrap
    on each tree (the floor under the wrapper), with a verdict against the 1 ms goal; with
    ``levers``, the SIF also mounted the ways of LEVERS, one home each."""
    sif = work / "base.sif"
    if not sif.exists():
        padded_sif(record.rootfs, sif, record.env, 0)
    unpacked = paths.home
    cli(unpacked, "install", "dcm2niix")
    data = Path(tempfile.mkdtemp(dir=work, prefix="data-"))  # the calls' working directory
    homes: dict[str, tuple[Path, str | None]] = {}
    chosen = [lever for lever in LEVERS if levers and shutil.which(LEVERS[lever][0])]
    for lever in [None, *chosen]:
        home = Path(tempfile.mkdtemp(dir=work, prefix="mounted-"))
        cli(home, "import", str(sif), "--name", "dcm2niix", "--version", "1")
        cli(home, "install", "dcm2niix")
        homes["mounted SIF" + (f", {lever}" if lever else "")] = (home, lever)
    wrappers = {"unpacked image": wrapper(unpacked)}
    image_dirs: dict[str, Path] = {}
    daemons: dict[str, int | None] = {}
    levered: list[subprocess.Popen[bytes]] = []
    for name, (home, lever) in homes.items():
        wrappers[name] = wrapper(home)
        image_dirs[name] = next((home / "store" / "images").glob("*"))
        if lever is not None:  # mounted the lever's way instead of mount.sh's (at install)
            argv = mount_argv(image_dirs[name], lever)
            point = argv[-1]
            if subprocess.run(["fusermount3", "-u", point], check=False).returncode != 0:
                subprocess.run(["fusermount3", "-u", "-z", point], check=True)
            levered.append(subprocess.Popen([argv[0], "-f", *argv[1:]]))  # its pid is ours
            daemons[name] = levered[-1].pid
            for _ in range(50):
                if mounts_under(Path(point)):
                    break
                time.sleep(0.1)
    how = " ".join(mount_argv(image_dirs["mounted SIF"], None)[:3])
    print(f"per call, in {data} (outside the image); mount.sh mounts with {how}; {load()}")
    variants = {name: [str(path), "-h"] for name, path in wrappers.items()}
    floors = {name: bare_bwrap(wrappers[name], data) for name in ("unpacked image", "mounted SIF")}
    if all(floors.values()):
        for name, floor in floors.items():
            variants[f"bare bwrap, {name}"] = floor or []
    for name, argv in variants.items():
        subprocess.run(argv, cwd=data, stdout=subprocess.DEVNULL, check=True)  # mounts
        key = name.removeprefix("bare bwrap, ")
        if key in image_dirs and name not in daemons:
            daemons[name] = daemons.get(key) or daemon_pid(image_dirs[key])
    wall, cpu, daemon = time_calls(variants, calls, data, daemons)
    table = Table(title=f"per call: wrapper + dcm2niix -h, {calls} calls each, interleaved")
    for column in (
        "variant",
        "median ms",
        "p90 ms",
        "added ms",
        "ratio",
        "CPU ms/call",
        "squashfuse CPU ms/call",
        "FUSE requests/call",
    ):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for name, values in wall.items():
        median = statistics.median(values)
        ref_name = "bare bwrap, unpacked image" if name.startswith("bare") else "unpacked image"
        ref = statistics.median(wall[ref_name])
        requests = "-"
        if name in image_dirs:
            requests = fuse_requests(
                image_dirs[name], variants[name], data, mount_argv(image_dirs[name], homes[name][1])
            ).split(" ", 1)[0]
        table.add_row(
            name,
            f"{median * 1e3:.2f}",
            f"{statistics.quantiles(values, n=10)[-1] * 1e3:.2f}",
            f"{(median - ref) * 1e3:+.2f}",
            f"{median / ref:.2f}x",
            f"{cpu[name] * 1e3:.2f}",
            f"{daemon[name] * 1e3:.2f}" if name in daemons else "-",
            requests,
        )
    Console(width=170).print(table)
    base = statistics.median(wall["unpacked image"])
    added = (statistics.median(wall["mounted SIF"]) - base) * 1e3
    cpu_added = (cpu["mounted SIF"] + daemon["mounted SIF"] - cpu["unpacked image"]) * 1e3
    requests = fuse_requests(
        image_dirs["mounted SIF"],
        variants["mounted SIF"],
        data,
        mount_argv(image_dirs["mounted SIF"], None),
    )
    print(f"FUSE requests of one warm call of the wrapper (mount.sh's mount): {requests}")
    print(
        f"CPU per call (user+sys of the call's processes, which load does not inflate): unpacked "
        f"{cpu['unpacked image'] * 1e3:.2f} ms, mounted SIF {cpu['mounted SIF'] * 1e3:.2f} ms "
        f"+ squashfuse {daemon['mounted SIF'] * 1e3:.2f} ms: {cpu_added:+.2f} ms"
    )
    verdict = "MET" if added <= GOAL_MS else "NOT MET"
    busy = os.getloadavg()[0] > (os.cpu_count() or 1)
    print(
        f"verdict: a mounted SIF adds {added:+.2f} ms per call (median, interleaved); goal within "
        f"{GOAL_MS:g} ms: {verdict}; {load()}"
        + (
            " (more runnable tasks than cores: wall times are inflated, the CPU line is not)"
            if busy
            else ""
        )
    )
    for home, _ in homes.values():
        cleanup(home)
    for daemon_process in levered:  # (unmounted by cleanup: they end)
        daemon_process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0.5,1.5,3", help="SIF sizes in GB, comma-separated")
    parser.add_argument("--runs", type=int, default=3, help="rounds per size (interleaved)")
    parser.add_argument(
        "--calls", type=int, default=300, help="calls of each variant for the per-call overhead"
    )
    parser.add_argument(
        "--quick", action="store_true", help="one round per size and 100 calls (about 5 minutes)"
    )
    parser.add_argument(
        "--calls-only",
        action="store_true",
        help="only the per-call overhead, mounted SIF vs unpacked (about a minute)",
    )
    parser.add_argument(
        "--levers",
        action="store_true",
        help="per-call rows also for the SIF mounted as before and with one option at a time",
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
        args.runs, args.calls = 1, 100
    paths, record = ensure_image("dcm2niix")
    work = Path(tempfile.mkdtemp(prefix="nd-bench-sif-"))
    if args.calls_only:
        try:
            run_calls(paths, record, work, args.calls, args.levers)
        finally:
            cleanup(work)
        return
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
        run_calls(paths, record, work, args.calls, args.levers)
    finally:
        server.close()
        cleanup(work)


if __name__ == "__main__":
    main()
