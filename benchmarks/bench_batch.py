"""Batch throughput (issue 8): the local executor against GNU parallel, and SLURM per-task cost.

1. 200 short tasks (``true`` in the dcm2niix image) through ``neurodesk batch --executor local``
   (records, hashes, logs included) and through ``parallel -j N`` running the same bwrap
   command line; interleaved rounds, whole wall time including each tool's own start-up.
2. A 20-task array on a private single-node SLURM (tests/integration/slurm.py): a plain
   ``sbatch --array`` of the same bwrap command against ``neurodesk batch --executor slurm``;
   wall time from submission until the queue is empty, per task. Needs root, slurm-wlm, munge.
3. What one array task costs on the node, without the scheduler's noise: the script sbatch
   runs for a task (neurodesk's submit script, as slurmd runs it, with SLURM_ARRAY_TASK_ID
   set) against the plain bwrap script; interleaved, one task at a time. The difference of the
   medians is what neurodesk adds per task (issue 16: at most 0.2 s).

Usage: python -m benchmarks.bench_batch [--tasks 200] [--rounds 3] [--slurm-tasks 20]
       python -m benchmarks.bench_batch --quick      # SLURM parts only, about 2 minutes
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from benchmarks.common import ensure_image, print_table
from neurodesk.paths import Paths
from neurodesk.runtime.bwrap import bwrap_argv
from neurodesk.runtime.spec import build_runspec
from neurodesk.store import ImageRecord


def make_inputs(directory: Path, count: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (directory / f"in{i:04d}.txt").write_text(f"{i}\n")
    listing = directory.parent / f"{directory.name}.list"
    listing.write_text("".join(f"{directory / f'in{i:04d}.txt'}\n" for i in range(count)))
    return listing


def container_script(record: ImageRecord, work: Path) -> Path:
    """The bwrap command line neurodesk would run, as a script parallel/sbatch can call."""
    argv = bwrap_argv(build_runspec(record, ["true"], cwd=str(work)))
    script = work / "task.sh"
    script.write_text(f"#!/bin/sh\nexec {shlex.join(argv)}\n")
    script.chmod(0o755)
    return script


def interleaved(variants: Mapping[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Each variant once per round, alternating; a warm-up round first, not counted."""
    for run in variants.values():
        run()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            samples[name].append(run())
    return samples


def timed(argv: list[str], env: Mapping[str, str] | None = None) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        proc = subprocess.run(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, check=False
        )
        if proc.returncode != 0:
            raise SystemExit(f"error: {shlex.join(argv[:6])} ... failed:\n{proc.stderr[-2000:]}")
        return time.perf_counter() - start

    return run


def local_bench(record: ImageRecord, work: Path, tasks: int, rounds: int) -> None:
    listing = make_inputs(work / "inputs", tasks)
    script = container_script(record, work)
    jobs = str(len(os.sched_getaffinity(0)))
    neurodesk = [sys.executable, "-m", "neurodesk", "batch", "dcm2niix", "--list", str(listing)]
    neurodesk += ["--jobs", jobs, "--force", "--name", f"bench-local-{os.getpid()}", "--", "true"]
    parallel = [
        "parallel",
        "--will-cite",
        "--retries",
        "3",  # neurodesk retries a failed bwrap set-up too
        "-j",
        jobs,
        str(script),
        "::::",
        str(listing),
    ]
    samples = interleaved(
        {"GNU parallel + bwrap": timed(parallel), "neurodesk batch (local)": timed(neurodesk)},
        rounds,
    )
    print_table(
        f"{tasks} tasks of 'true' in {record.id}, {jobs} at a time, {rounds} rounds: wall time "
        f"(throughput = {tasks} / median)",
        samples,
        baseline="GNU parallel + bwrap",
    )
    for name, values in samples.items():
        median = sorted(values)[len(values) // 2]
        print(f"  {name}: {tasks / median:.0f} tasks/s")


def slurm_bench(record: ImageRecord, work: Path, tasks: int, rounds: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.integration.slurm import start_cluster, stop_cluster

    listing = make_inputs(work / "slurm-inputs", tasks)
    script = container_script(record, work)
    root = Path(tempfile.mkdtemp(prefix="nd-bench-slurm-"))
    cluster = start_cluster(root)
    try:

        def until_empty(submit: list[str]) -> Callable[[], float]:
            def run() -> float:
                start = time.perf_counter()
                subprocess.run(submit, env=cluster.env, check=True, capture_output=True)
                while cluster.run("squeue", "-h").stdout.strip():
                    time.sleep(0.05)
                return (time.perf_counter() - start) / tasks

            return run

        plain = ["sbatch", f"--array=0-{tasks - 1}", f"--output={work}/slurm-%a.out", str(script)]
        neurodesk = [sys.executable, "-m", "neurodesk", "batch", "dcm2niix", "--list"]
        neurodesk += [
            str(listing),
            "--executor",
            "slurm",
            "--force",
            "--name",
            f"bench-slurm-{os.getpid()}",
        ]
        samples = interleaved(
            {
                "sbatch --array + bwrap": until_empty(plain),
                "neurodesk batch (slurm)": until_empty([*neurodesk, "--", "true"]),
            },
            rounds,
        )
        batch = Paths.from_env().home / "batches" / f"bench-slurm-{os.getpid()}"
        task_samples = per_task(script, newest_script(batch), tasks, max(10, 3 * rounds))
    finally:
        stop_cluster(cluster)
        shutil.rmtree(root, ignore_errors=True)
    print_table(
        f"SLURM array of {tasks} tasks ('true' in {record.id}), single node with 2 CPUs, "
        f"{rounds} rounds: wall time per task, submission to empty queue",
        samples,
        baseline="sbatch --array + bwrap",
    )
    print_table(
        f"one array task alone ('true' in {record.id}), the script slurmd runs, "
        f"{len(task_samples['bwrap task script'])} runs each: wall time per task",
        task_samples,
        baseline="bwrap task script",
    )
    added = statistics.median(task_samples["neurodesk array task"]) - statistics.median(
        task_samples["bwrap task script"]
    )
    print(f"  neurodesk adds {added:.3f} s per array task (issue 16: at most 0.2 s)")


def newest_script(batch: Path) -> Path:
    scripts = sorted((batch / "slurm").glob("submit-*.sh"), key=lambda p: int(p.stem.split("-")[1]))
    if not scripts:
        raise SystemExit(f"error: no submit script under {batch / 'slurm'}")
    return scripts[-1]


def per_task(plain: Path, submitted: Path, tasks: int, runs: int) -> dict[str, list[float]]:
    """Each script once per run, alternating, as slurmd would start task ``run % tasks``."""
    samples: dict[str, list[float]] = {"bwrap task script": [], "neurodesk array task": []}
    for run in range(runs + 1):  # the first run warms up, not counted
        env = dict(os.environ, SLURM_JOB_ID="1", SLURM_ARRAY_JOB_ID="1")
        env["SLURM_ARRAY_TASK_ID"] = str(run % tasks)
        for name, script in (("bwrap task script", plain), ("neurodesk array task", submitted)):
            took = timed(["/bin/sh", str(script)], env)()
            if run:
                samples[name].append(took)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=200, help="local tasks (default 200; 0: skip)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per variant (>= 2)")
    parser.add_argument("--slurm-tasks", type=int, default=20, help="SLURM array size (0: skip)")
    parser.add_argument(
        "--quick", action="store_true", help="only the SLURM parts, 20 tasks, 3 rounds (~2 min)"
    )
    args = parser.parse_args()
    if args.quick:
        args.tasks, args.rounds, args.slurm_tasks = 0, 3, 20
    if args.tasks and shutil.which("parallel") is None:
        print("error: GNU parallel is not installed (sudo apt-get install parallel)")
        return 1
    paths, record = ensure_image("dcm2niix")
    try:
        with tempfile.TemporaryDirectory(prefix="nd-bench-batch-", dir="/tmp") as tmp:
            if args.tasks:
                local_bench(record, Path(tmp), args.tasks, args.rounds)
            if args.slurm_tasks:
                if os.geteuid() != 0 or shutil.which("slurmctld") is None:
                    print("skipping the SLURM part: needs root and slurm-wlm + munge")
                else:
                    slurm_bench(record, Path(tmp), args.slurm_tasks, args.rounds)
    finally:  # the benchmark's batches are not the user's
        for kind in ("local", "slurm"):
            shutil.rmtree(
                paths.home / "batches" / f"bench-{kind}-{os.getpid()}", ignore_errors=True
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
