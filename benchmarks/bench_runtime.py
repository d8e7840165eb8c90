"""Added start time per call of a containerised tool against the native binary (issues 5, 15).

Single calls of ``dcm2niix -h``, interleaved: the host's apt binary, the installed wrapper
(dash, neurodesk-launch forwarding signals, bwrap), bwrap alone with the RunSpec's arguments
for the same call (its floor), dash doing nothing but ``exec bwrap`` with those arguments (the
floor of any shell wrapper: one more program start), dash doing nothing but ``exec
neurodesk-launch bwrap`` (the floor of a shell wrapper that forwards signals: one more program
start and a fork), the wrapper script alone (its final ``exec`` made an ``exit``: the script's
own work), and ``neurodesk exec`` (Python, the signal forwarder, bwrap).
``--before SRC`` adds the wrapper that another checkout's ``SRC/src`` installs for the same
image (say main's, for a before/after table in the same run). Then CPU time per call, and a
100-call shell loop (``for i in $(seq 100); do dcm2niix -h >/dev/null; done``), native vs
wrapped, per call. The goal of issue 15: the wrapper's added time stays within 1 ms of bwrap
alone's, signal forwarding included.

Usage: python -m benchmarks.bench_runtime [--runs N] [--loops N] [--before SRC]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import ensure_image, interleaved, print_table
from neurodesk.install.installer import install_image
from neurodesk.runtime.bwrap import bwrap_argv
from neurodesk.runtime.launcher import PREFIX_PATH
from neurodesk.runtime.spec import build_runspec

LOOP = "for i in $(seq 100); do dcm2niix -h >/dev/null; done"
WRAPPER = "wrapper (sh + launcher + bwrap)"
BEFORE = "wrapper before (--before)"
BWRAP = "bwrap alone"
SH_FLOOR = "sh exec bwrap (any sh wrapper's floor)"
LAUNCH_FLOOR = "sh exec launcher bwrap (floor with signals)"
SCRIPT_ONLY = "wrapper script alone (exec -> exit)"
# The fast path's exec of the launcher (the common call's), which the script-alone variant
# turns into an exit.
LAUNCH_EXEC = 'exec "$nd_launch" -e $(($# + 1)) '

_INSTALL = """
import sys
from pathlib import Path
from neurodesk.install.installer import install_image
from neurodesk.paths import Paths
from neurodesk.store import Store
record = Store(Paths.from_env().store).resolve(sys.argv[1])
print(install_image(record, Path(sys.argv[2])).bin_dir)
"""


def cpu_ms(argv: list[str], runs: int) -> float:
    """Mean CPU time (user + sys, children included) per run: what load does not inflate."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    failed = 0
    for _ in range(runs):
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        failed += done.returncode != 0
    if failed:
        print(f"warning: {failed} of {runs} runs of {argv[0]} failed")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return used / runs * 1e3


def before_wrapper(src: Path, image: str, prefix: Path) -> Path:
    """The wrapper another checkout installs for ``image`` (its ``src`` first on the path)."""
    env = dict(os.environ, PYTHONPATH=str(src / "src"))
    out = subprocess.run(
        [sys.executable, "-c", _INSTALL, image, str(prefix)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip().splitlines()[-1]) / "dcm2niix"


def script_only(wrapper: Path, dest_dir: Path) -> Path:
    """A copy of ``wrapper`` beside it that does all its work but exits instead of running the
    launcher: the script's own cost. Written in ``dest_dir``, which must be the wrapper's
    directory (the wrapper finds everything relative to itself)."""
    text = wrapper.read_text()
    if text.count(LAUNCH_EXEC) != 1:
        raise SystemExit(f"error: {wrapper} has no single '{LAUNCH_EXEC}' line to cut")
    copy = dest_dir / f".{wrapper.name}-script-only"
    copy.write_text(text.replace(LAUNCH_EXEC, "exit 0; " + LAUNCH_EXEC))
    copy.chmod(0o755)
    return copy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=40, help="single-call runs per variant")
    parser.add_argument("--loops", type=int, default=5, help="100-call loops per variant")
    parser.add_argument("--before", type=Path, help="a checkout whose wrapper to compare with")
    args = parser.parse_args()
    native = shutil.which("dcm2niix", path="/usr/bin:/usr/local/bin")
    if native is None:
        print("error: dcm2niix is not installed natively (sudo apt-get install dcm2niix)")
        return 1
    paths, record = ensure_image("dcm2niix")
    bin_dir = install_image(record, paths.installs).bin_dir
    spec = build_runspec(record, ["dcm2niix", "-h"], cwd=os.getcwd())
    nd = [sys.executable, "-m", "neurodesk", "exec", record.name, "--", "dcm2niix", "-h"]
    launcher = paths.installs / PREFIX_PATH
    variants = {
        "native (apt)": [native, "-h"],
        WRAPPER: [str(bin_dir / "dcm2niix"), "-h"],
        BWRAP: bwrap_argv(spec),
        SH_FLOOR: ["dash", "-c", 'exec "$@"', "sh", *bwrap_argv(spec)],
        LAUNCH_FLOOR: ["dash", "-c", 'exec "$@"', "sh", str(launcher), *bwrap_argv(spec)],
        "neurodesk exec (python + bwrap)": nd,
    }
    with tempfile.TemporaryDirectory(prefix="bench-runtime-") as tmp:
        # the script-alone copy goes into an install of its own, not into the user's
        alone_bin = install_image(record, Path(tmp) / "alone").bin_dir
        variants[SCRIPT_ONLY] = [str(script_only(alone_bin / "dcm2niix", alone_bin)), "-h"]
        if args.before is not None:
            ref = f"{record.name}/{record.version}/{record.builddate}"
            variants[BEFORE] = [str(before_wrapper(args.before, ref, Path(tmp))), "-h"]
        single = interleaved(variants, args.runs)
        print_table(f"dcm2niix -h, one call, {args.runs} runs each", single, "native (apt)")
        median = {name: statistics.median(values) * 1e3 for name, values in single.items()}
        floor = median[BWRAP] - median["native (apt)"]
        for name in (WRAPPER, BEFORE, SH_FLOOR, LAUNCH_FLOOR):
            if name in median:
                added = median[name] - median["native (apt)"]
                print(
                    f"{name}: +{added:.2f} ms over native, bwrap alone +{floor:.2f} ms: "
                    f"{added - floor:+.2f} ms over bwrap's floor (goal: within 1 ms)"
                )
        print(
            f"where the wrapper's time over {SH_FLOOR} goes: launcher (fork, wait, one more "
            f"exec) {median[LAUNCH_FLOOR] - median[SH_FLOOR]:+.2f} ms, the rest (the script's "
            f"own work) {median[WRAPPER] - median[LAUNCH_FLOOR]:+.2f} ms; the script alone "
            f"{median[SCRIPT_ONLY] - median['native (apt)']:+.2f} ms over native"
        )
        cpu = {name: cpu_ms(argv, args.runs) for name, argv in variants.items()}
    base = cpu["native (apt)"]
    for name, value in cpu.items():
        print(f"CPU time per call, {name}: {value:.2f} ms ({value - base:+.2f} ms)")
    print(f"CPU time of the wrapper over bwrap alone: {cpu[WRAPPER] - cpu[BWRAP]:+.2f} ms")
    print(f"CPU time of the wrapper over {SH_FLOOR}: {cpu[WRAPPER] - cpu[SH_FLOOR]:+.2f} ms")
    print(
        f"CPU time of the wrapper over {LAUNCH_FLOOR}: {cpu[WRAPPER] - cpu[LAUNCH_FLOOR]:+.2f} ms"
    )
    loops = interleaved(
        {
            "native loop": ["sh", "-c", f"PATH=/usr/bin:$PATH; {LOOP}"],
            "wrapped loop": ["sh", "-c", f"PATH={bin_dir}:$PATH; {LOOP}"],
        },
        args.loops,
    )
    per_call = {name: [v / 100 for v in values] for name, values in loops.items()}
    print_table(f"100-call loop, per call, {args.loops} loops each", per_call, "native loop")
    added_loop = statistics.median(per_call["wrapped loop"]) - statistics.median(
        per_call["native loop"]
    )
    print(f"added per call in a loop: {added_loop * 1e3:.2f} ms (goal < 10 ms)")
    print("load:", " ".join(Path("/proc/loadavg").read_text().split()[:3]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
