"""Added start time per call of a containerised tool against the native binary (issue 5).

Single calls of ``dcm2niix -h``: the host's apt binary, the installed wrapper (bash, its
signal forwarder and bwrap), bwrap alone with the RunSpec's arguments, and ``neurodesk
exec`` (Python, the bash signal forwarder and bwrap). Then a 100-call shell loop
(``for i in $(seq 100); do dcm2niix -h >/dev/null; done``), native vs wrapped, reported per
call. Usage: python -m benchmarks.bench_runtime [--runs N] [--loops N]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys

from benchmarks.common import ensure_image, interleaved, print_table
from neurodesk.install.installer import install_image
from neurodesk.runtime.bwrap import bwrap_argv
from neurodesk.runtime.spec import build_runspec

LOOP = "for i in $(seq 100); do dcm2niix -h >/dev/null; done"


def cpu_ms(argv: list[str], runs: int) -> float:
    """Mean CPU time (user + sys, children included) per run: what load does not inflate."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(runs):
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return used / runs * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30, help="single-call runs per variant")
    parser.add_argument("--loops", type=int, default=5, help="100-call loops per variant")
    args = parser.parse_args()
    native = shutil.which("dcm2niix", path="/usr/bin:/usr/local/bin")
    if native is None:
        print("error: dcm2niix is not installed natively (sudo apt-get install dcm2niix)")
        return 1
    paths, record = ensure_image("dcm2niix")
    bin_dir = install_image(record, paths.installs).bin_dir
    spec = build_runspec(record, ["dcm2niix", "-h"], cwd="/tmp")
    nd = [sys.executable, "-m", "neurodesk", "exec", record.name, "--", "dcm2niix", "-h"]
    variants = {
        "native (apt)": [native, "-h"],
        "wrapper (bash + bwrap)": [str(bin_dir / "dcm2niix"), "-h"],
        "bwrap alone": bwrap_argv(spec),
        "neurodesk exec (python + bwrap)": nd,
    }
    single = interleaved(variants, args.runs)
    print_table(f"dcm2niix -h, one call, {args.runs} runs each", single, "native (apt)")
    cpu = {name: cpu_ms(argv, args.runs) for name, argv in variants.items()}
    base = cpu["native (apt)"]
    for name, value in cpu.items():
        print(f"CPU time per call, {name}: {value:.2f} ms ({value - base:+.2f} ms)")
    loops = interleaved(
        {
            "native loop": ["sh", "-c", f"PATH=/usr/bin:$PATH; {LOOP}"],
            "wrapped loop": ["sh", "-c", f"PATH={bin_dir}:$PATH; {LOOP}"],
        },
        args.loops,
    )
    per_call = {name: [v / 100 for v in values] for name, values in loops.items()}
    print_table(f"100-call loop, per call, {args.loops} loops each", per_call, "native loop")
    added = statistics.median(per_call["wrapped loop"]) - statistics.median(per_call["native loop"])
    print(f"added per call in a loop: {added * 1e3:.2f} ms (goal < 10 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
