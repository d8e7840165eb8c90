"""How long `neurodesk search`/`list`/`info` take over a catalog of 400 containers (issue 16).

A temporary ``NEURODESK_HOME`` gets upstream's catalog (a generated ``apps.json`` in
neurocommand's format with ``--containers`` containers, as ``neurodesk update`` leaves it), a few
images in the store (each with ``/build.yaml``, ``/README.md`` and deployed commands; fsl's with
``--files`` more files, as a big tool has, which ``info`` sizes) and the shipped recipes. Then,
interleaved, each command runs as a user runs it (a new process):

- ``python -c pass``: the interpreter's own start-up, the floor nothing here can go below;
- ``neurodesk --version``: start-up plus importing the command line;
- ``search fsl``, ``list``, ``info fsl`` and their ``--json`` variants.

"added ms" is the median over ``python -c pass``: the goal is under 100 ms for every command.
CPU time (user + system of the child) is printed beside wall time: on a loaded machine it moves
far less. Children run with compiled modules cached, as users' installs do (this machine's
shells set PYTHONDONTWRITEBYTECODE, which makes every run compile neurodesk's modules again).
A second table times the same commands inside one process after start-up (importing the CLI,
then the command: its lazy imports and its work), and ``--importtime`` prints the slowest imports
of ``search fsl`` (``python -X importtime``).

    python -m benchmarks.bench_cli                 # ~1 minute on a quiet machine
    python -m benchmarks.bench_cli --runs 5        # quicker, noisier
    git archive main src | tar -x -C /tmp/before   # main's code, timed beside this one:
    python -m benchmarks.bench_cli --before /tmp/before/src
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from tests.upstream_data import count_containers, make_apps_json

from neurodesk.store.store import Store

REPO = Path(__file__).resolve().parent.parent

# Images in the store: (name, version, builddate); fsl's matches upstream's fsl 6.0.7.4.
IMAGES = [
    ("fsl", "6.0.7.4", "20231025"),
    ("afni", "24.1.02", "20240601"),
    ("ants", "2.5.0", "20240315"),
    ("dcm2niix", "v1.0.20240202", "20240210"),
    ("mrtrix3", "3.0.4", "20231201"),
    ("tool000", "1.0.0", "20240101"),
]

COMMANDS: dict[str, list[str]] = {
    "--version": ["--version"],
    "search fsl": ["search", "fsl"],
    "search fsl --json": ["search", "fsl", "--json"],
    "list": ["list"],
    "list --json": ["list", "--json"],
    "info fsl": ["info", "fsl"],
    "info fsl --json": ["info", "fsl", "--json"],
}

# Upstream's recipe of fsl as 'info' caches it (fresh: 'info' does not ask the network).
FSL_RECIPE = """name: fsl
version: 6.0.7.4
copyright:
  - license: FSL-license
    url: https://fsl.fmrib.ox.ac.uk/fsl/docs/license.html
structured_readme:
  description: FSL is a comprehensive library of analysis tools for brain imaging data.
  citation: Jenkinson M, et al. FSL. NeuroImage 2012.
  documentation: https://fsl.fmrib.ox.ac.uk/fsl/docs/
"""


def catalog_of(containers: int) -> dict[str, object]:
    """The smallest generated catalog with at least ``containers`` containers."""
    tools = 110
    while count_containers(data := make_apps_json(tools=tools)) < containers:
        tools += 5
    return data


def _fill(name: str, version: str, files: int) -> Callable[[Path], dict[str, Any]]:
    def fill(rootfs: Path) -> dict[str, Any]:
        bin_dir = rootfs / "opt" / name / "bin"
        bin_dir.mkdir(parents=True)
        for number in range(files):  # a big tool's tree: 'info' measures it on disk
            folder = rootfs / "opt" / name / "data" / f"{number // 1000:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"f{number}").write_text(f"{name} {number}\n")
        for number in range(12):
            tool = bin_dir / f"{name}_cmd{number}"
            tool.write_text("#!/bin/sh\necho hello\n")
            tool.chmod(0o755)
        (rootfs / "build.yaml").write_text(
            f"name: {name}\nversion: {version}\n"
            "categories: [structural imaging, functional imaging]\n"
            "copyright:\n  - license: MIT\n    url: https://example.org/license\n"
            "structured_readme:\n"
            f"  description: {name} analyses brain images (benchmark image).\n"
            "gui_apps:\n"
            f"  - name: {name}GUI\n    exec: {name}_cmd0\n"
        )
        readme = f"# {name} {version}\n\n{name} analyses brain images.\n\n" + "text\n" * 200
        (rootfs / "README.md").write_text(readme)
        env = [f"DEPLOY_PATH=/opt/{name}/bin", "PATH=/usr/bin:/bin"]
        return {"config": {"Env": env, "Labels": {}}}

    return fill


def make_home(home: Path, containers: int, files: int = 0) -> int:
    """Fill ``home``; returns the number of containers in upstream's catalog."""
    data = catalog_of(containers)
    upstream = home / "cache" / "upstream"
    upstream.mkdir(parents=True)
    (upstream / "apps.json").write_text(json.dumps(data, indent=4))
    (upstream / "apps.meta.json").write_text(json.dumps({"url": "bench", "fetched": "bench"}))
    (upstream / "recipes").mkdir()
    (upstream / "recipes" / "fsl.yaml").write_text(FSL_RECIPE)
    store = Store(home / "store")
    for name, version, builddate in IMAGES:
        digest = "sha256:" + f"{name}{version}".encode().hex().ljust(64, "0")[:64]
        fill = _fill(name, version, files if name == "fsl" else 0)
        store.import_rootfs(digest, fill, name, version, builddate, "bench")
    return count_containers(data)


def _neurodesk() -> list[str]:
    """The installed console script when there is one (what users run), else ``-m``."""
    script = Path(sys.executable).parent / "neurodesk"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "neurodesk"]


Variant = tuple[list[str], dict[str, str]]
Sample = tuple[float, float]  # (wall seconds, CPU seconds of the child)


def run_once(argv: list[str], env: dict[str, str]) -> Sample:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def interleaved(variants: dict[str, Variant], runs: int) -> dict[str, list[Sample]]:
    """Each variant ``runs`` times, alternating (drift hits all alike), after one warm-up run."""
    for argv, env in variants.values():
        run_once(argv, env)
    samples: dict[str, list[Sample]] = {name: [] for name in variants}
    for _ in range(runs):
        for name, (argv, env) in variants.items():
            samples[name].append(run_once(argv, env))
    return samples


def print_samples(title: str, samples: dict[str, list[Sample]], baseline: str) -> None:
    """Medians of wall and CPU time, each also as added over ``baseline``; 'vs before' is the
    ratio of wall-time added over the baseline, this code to the 'before:' code."""
    wall = {name: statistics.median(w for w, _ in values) * 1e3 for name, values in samples.items()}
    cpu = {name: statistics.median(c for _, c in values) * 1e3 for name, values in samples.items()}
    table = Table(title=title)
    for column in ("variant", "runs", "wall ms", "added ms", "CPU ms", "added CPU ms", "vs before"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for name, values in samples.items():
        before = f"before: {name}"
        ratio = ""
        if before in wall and wall[before] - wall[baseline] > 0:
            ratio = f"{(wall[name] - wall[baseline]) / (wall[before] - wall[baseline]):.2f}x"
        table.add_row(
            name,
            str(len(values)),
            f"{wall[name]:.1f}",
            f"{wall[name] - wall[baseline]:+.1f}",
            f"{cpu[name]:.1f}",
            f"{cpu[name] - cpu[baseline]:+.1f}",
            ratio,
        )
    Console(width=120).print(table)


IN_PROCESS = """
import contextlib, io, json, sys, time
start = time.perf_counter()
from neurodesk.cli.main import cli
imported = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    try:
        cli.main(sys.argv[2:], prog_name="neurodesk", standalone_mode=False)
    except SystemExit:
        pass
done = time.perf_counter()
with open(sys.argv[1], "w") as out:
    json.dump({"cli import": imported - start, "command": done - imported}, out)
"""


def in_process(env: dict[str, str], runs: int, scratch: Path) -> dict[str, dict[str, list[float]]]:
    """Per command: the time to import the CLI and to run the command, inside one process."""
    out: dict[str, dict[str, list[float]]] = {}
    result = scratch / "in-process.json"
    for _ in range(runs):
        for name, args in COMMANDS.items():
            if name == "--version":
                continue  # click prints and exits from inside: nothing to time after import
            argv = [sys.executable, "-c", IN_PROCESS, str(result), *args]
            subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
            times = json.loads(result.read_text())
            slot = out.setdefault(name, {"cli import": [], "command": []})
            for key, value in times.items():
                slot[key].append(value)
    return out


def importtime(env: dict[str, str], args: list[str], top: int) -> list[tuple[int, str]]:
    """The ``top`` slowest imports (cumulative µs) of ``neurodesk ARGS``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "neurodesk", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self, cumulative, raw = line[len("import time:") :].split("|")
        depth = (len(raw) - len(raw.lstrip()) - 1) // 2
        if depth <= 1:  # top-level imports and what they import directly
            rows.append((int(cumulative), "  " * depth + raw.strip()))
    return sorted(rows, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs per command")
    parser.add_argument("--containers", type=int, default=400, help="containers in the catalog")
    parser.add_argument(
        "--files", type=int, default=20000, help="files in the store's fsl image (info sizes it)"
    )
    parser.add_argument("--importtime", action="store_true", help="print the slowest imports")
    parser.add_argument("--keep", action="store_true", help="keep the temporary home")
    parser.add_argument(
        "--before",
        metavar="SRC",
        help="also time the neurodesk package under SRC (e.g. an export of main's src/), "
        "interleaved, as 'before:' rows",
    )
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    try:
        home = scratch / "home"
        count = make_home(home, args.containers, args.files)
        env = dict(os.environ, NEURODESK_HOME=str(home), NEURODESK_RECIPES=str(REPO / "recipes"))
        env.pop("COLUMNS", None)
        # Users' Python caches compiled modules (pip compiles at install; an editable install
        # writes __pycache__ on first import); this machine's shells set the opposite.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        neurodesk = _neurodesk()
        variants: dict[str, Variant] = {"python -c pass": ([sys.executable, "-c", "pass"], env)}
        for name, command in COMMANDS.items():
            if args.before:
                before = dict(env, PYTHONPATH=str(Path(args.before).resolve()))
                variants[f"before: {name}"] = ([*neurodesk, *command], before)
            variants[name] = ([*neurodesk, *command], env)
        samples = interleaved(variants, args.runs)
        print_samples(
            f"neurodesk over {count} upstream containers, {len(IMAGES)} store images, "
            f"{len(list((REPO / 'recipes').glob('*/build.yaml')))} recipes "
            f"(a new process per run; load {os.getloadavg()[0]:.1f})",
            samples,
            "python -c pass",
        )
        if shutil.which("script"):  # the same on a terminal (a pty, 120 columns): tables fold
            tty_env = dict(env, COLUMNS="120", LINES="40")
            tty: dict[str, Variant] = {}
            for name, command in [("python -c pass", [sys.executable, "-c", "pass"])] + [
                (n, [*neurodesk, *COMMANDS[n]]) for n in ("search fsl", "list", "info fsl")
            ]:
                line = ["script", "-qec", shlex.join(command), "/dev/null"]
                if args.before and name != "python -c pass":
                    before = dict(tty_env, PYTHONPATH=str(Path(args.before).resolve()))
                    tty[f"before: {name} (terminal)"] = (line, before)
                tty[f"{name} (terminal)"] = (line, tty_env)
            print_samples(
                f"on a terminal (script(1), 120 columns; load {os.getloadavg()[0]:.1f})",
                interleaved(tty, args.runs),
                "python -c pass (terminal)",
            )
        inside = in_process(env, max(3, args.runs // 3), scratch)
        table = Table(title="inside one process after Python start-up (medians, ms)")
        for column in ("command", "import the CLI", "run the command", "total"):
            table.add_column(column, justify="left" if column == "command" else "right")
        for name, parts in inside.items():
            cli_ms = statistics.median(parts["cli import"]) * 1e3
            command_ms = statistics.median(parts["command"]) * 1e3
            table.add_row(name, f"{cli_ms:.1f}", f"{command_ms:.1f}", f"{cli_ms + command_ms:.1f}")
        Console(width=120).print(table)
        if args.importtime:
            for cumulative, name in importtime(env, ["search", "fsl"], 25):
                print(f"{cumulative / 1e3:8.1f} ms  {name}")
        if args.keep:
            print(f"home kept at {home}")
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
