"""Scale of ``neurodesk hub`` (issue 19): time to a usable server and memory per idle server.

For each N: a real hub (PAM, local processes as real system accounts, dcm2niix in the shared
site tree) and N users created for the run (useradd; removed at the end). N users log in and
start their server one after another, then (after a hub restart) all at once. "Usable" means
the user's JupyterLab page and its REST API answer through the proxy. Memory is the resident
memory of each server's process tree once idle (``hub status``), so the desktop's
configuration, the tools panel and JupyterLab are all counted; a kernel a user starts adds to it.

From the figures it projects users per 64 GB node (4 GB kept for the system and the hub) and
what to plan for 100 users. Goal: < 10 s to a usable server, < 300 MB per idle user.

Needs root, node/npm (configurable-http-proxy is installed into the deployment), bwrap, and the
dcm2niix image in $NEURODESK_HOME's store (built from its recipe when missing). Users' servers
need a Python every account can run: ``--python``; by default a venv of /usr/bin/python3 that
sees this venv through a .pth file (the same shortcut as tests/integration/test_hub.py).

Usage: python -m benchmarks.bench_hub [--users 5,10,20]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

import neurodesk
from benchmarks.common import ensure_image
from neurodesk.hub.deploy import init_deployment
from neurodesk.hub.layout import HubDir
from neurodesk.hub.prepare import prepare_site
from neurodesk.hub.process import start_hub, stop_hub
from neurodesk.hub.status import hub_status

NODE_GB = 64
RESERVED_GB = 4
PREFIX = "ndbench"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def bridge_python() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="nd-hub-bench-python-", dir="/opt"))
    root.chmod(0o755)
    shutil.rmtree(root)
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(root)], check=True)
    site = root / "lib" / f"python{sysconfig.get_python_version()}" / "site-packages"
    package_root = Path(neurodesk.__file__).resolve().parents[1]
    (site / "neurodesk-bench.pth").write_text(
        f"{sysconfig.get_paths()['purelib']}\n{package_root}\n"
    )
    for sub in ("etc", "share"):
        (root / sub).symlink_to(Path(sys.prefix) / sub)
    try:
        yield root / "bin" / "python"
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def bench_users(count: int) -> Iterator[dict[str, str]]:
    users = {f"{PREFIX}{i:02d}": f"Bench-pass-{i}-{os.getpid()}" for i in range(1, count + 1)}
    for name in users:
        subprocess.run(["userdel", "-r", name], capture_output=True, check=False)
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], check=True)
    lines = "".join(f"{n}:{p}\n" for n, p in users.items())
    subprocess.run(["chpasswd"], input=lines, text=True, check=True)
    try:
        yield users
    finally:
        for name in users:  # userdel refuses while a process of the user runs
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True).returncode:
                    break
                time.sleep(0.3)
            subprocess.run(["userdel", "-r", name], capture_output=True, check=False)


def time_to_usable(url: str, user: str, password: str, timeout: float = 300) -> float:
    """Seconds from submitting the login form until JupyterLab and its API answer."""
    with httpx.Client(base_url=url, follow_redirects=True, timeout=120) as client:
        client.get("hub/login")
        started = time.monotonic()
        client.post(
            "hub/login",
            data={"username": user, "password": password, "_xsrf": client.cookies["_xsrf"]},
        )
        while time.monotonic() - started < timeout:
            lab = client.get(f"user/{user}/lab")
            usable = lab.status_code == 200 and lab.url.path == f"/user/{user}/lab"
            if usable and client.get(f"user/{user}/api/status").status_code == 200:
                return time.monotonic() - started
            time.sleep(0.25)
    raise TimeoutError(f"{user}'s server not usable after {timeout} s")


def idle_memory(hub: HubDir, settle: float) -> list[int]:
    time.sleep(settle)
    status = hub_status(hub)
    return [u.server.memory_bytes for u in status.users if u.server and u.server.memory_bytes]


def run(count: int, python: Path, store: Path, settle: float) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    with bench_users(count) as users:
        root = Path(tempfile.mkdtemp(prefix="nd-hub-bench-", dir="/opt"))
        root.chmod(0o755)
        try:
            port = free_port()
            hub = init_deployment(
                root,
                {
                    "authenticator": "pam",
                    "users": list(users),
                    "bind": f"127.0.0.1:{port}",
                    "python": str(python),
                    "tools": ["dcm2niix"],
                    "idle_timeout": 0,
                },
                force=True,
            )
            subprocess.run(["cp", "-al", str(store), str(hub.site / "store")], check=True)
            prepare_site(hub)
            for mode in ("in turn", "together"):
                started = start_hub(hub)
                try:
                    wall = time.monotonic()
                    if mode == "in turn":
                        times = [time_to_usable(started.url, u, p) for u, p in users.items()]
                    else:
                        with ThreadPoolExecutor(max_workers=count) as pool:
                            futures = [
                                pool.submit(time_to_usable, started.url, u, p)
                                for u, p in users.items()
                            ]
                            times = [f.result() for f in futures]
                    wall = time.monotonic() - wall
                    memory = idle_memory(hub, settle)
                finally:
                    stop_hub(hub)
                rows.append(
                    {
                        "n": count,
                        "mode": mode,
                        "median": statistics.median(times),
                        "p90": sorted(times)[max(0, math.ceil(0.9 * len(times)) - 1)],
                        "max": max(times),
                        "wall": wall,
                        "memory": statistics.mean(memory) if memory else float("nan"),
                        "servers": len(memory),
                    }
                )
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return rows


def report(rows: list[dict[str, object]]) -> None:
    console = Console()
    table = Table(title="neurodesk hub: time to a usable server, memory per idle server")
    for column in ("N", "spawn", "median s", "p90 s", "max s", "all usable s", "idle MB/user"):
        table.add_column(column, justify="left" if column == "spawn" else "right")
    for row in rows:
        table.add_row(
            str(row["n"]),
            str(row["mode"]),
            f"{row['median']:.1f}",
            f"{row['p90']:.1f}",
            f"{row['max']:.1f}",
            f"{row['wall']:.1f}",
            f"{float(str(row['memory'])) / 1024**2:.0f} ({row['servers']})",
        )
    console.print(table)
    memories = [float(str(r["memory"])) for r in rows if r["servers"]]
    if not memories:
        return
    per_user = max(memories)
    fits = int((NODE_GB - RESERVED_GB) * 1024**3 // per_user)
    console.print(
        f"idle: {per_user / 1024**2:.0f} MB per user (the largest mean measured) -> about "
        f"{fits} idle users per {NODE_GB} GB node ({RESERVED_GB} GB kept for system and hub)"
    )
    plan = math.ceil(100 * per_user / 1024**3 + RESERVED_GB)
    console.print(
        f"100 users: {plan} GB for idle servers alone; plan memory for working users by "
        "limits.memory (each kernel and tool run adds its own), e.g. 100 x 2 GB = 200 GB over "
        "4 nodes of 64 GB, or spawner slurm to spread sessions over a cluster"
    )
    load = os.getloadavg()
    console.print(f"load average during the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", default="5,10,20", help="comma-separated N values")
    parser.add_argument("--python", type=Path, help="Python for users' servers")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds before measuring")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("error: needs root (creates users, runs the hub)")
    _paths, record = ensure_image("dcm2niix")
    counts = [int(n) for n in args.users.split(",")]
    rows: list[dict[str, object]] = []
    with bridge_python() if args.python is None else _given(args.python) as python:
        for count in counts:
            rows.extend(run(count, python, record.store_root, args.settle))
    report(rows)


@contextmanager
def _given(python: Path) -> Iterator[Path]:
    yield python


if __name__ == "__main__":
    main()
