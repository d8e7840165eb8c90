"""Transparent install (issue 6): `module load` + first call, and wrapper overhead.

Three tables, each interleaved, with medians and ratios:

1. ``module load`` + first call, in one ``bash -c`` with Lmod initialised: against the same
   shell calling the native (apt) dcm2niix, and against ``. activate`` instead of modules;
2. the wrapper against ``neurodesk exec`` (the issue's baseline) and the native binary;
3. the wrapper's own shell work: the wrapper with ``bwrap`` replaced by ``true`` against
   ``sh -c 'exec true'`` (what any shell script costs to start), so the difference is the
   script; in wall time and in CPU time (user+sys, which a busy machine does not inflate).

Usage: python -m benchmarks.bench_install [--runs N]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from benchmarks.common import ensure_image, interleaved, print_table
from neurodesk.install.installer import install_image

LMOD_INIT = "/usr/share/lmod/lmod/init/bash"


def cpu_once(argv: Sequence[str], env: Mapping[str, str]) -> float:
    """User + system CPU seconds of one run: unlike wall time, not inflated by a busy machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def interleaved_cpu(
    variants: Mapping[str, Sequence[str]], runs: int, env: Mapping[str, str]
) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(runs):
        for name, argv in variants.items():
            samples[name].append(cpu_once(argv, env))
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30, help="runs per variant (default 30)")
    args = parser.parse_args()
    native = shutil.which("dcm2niix", path="/usr/bin:/usr/local/bin")
    if native is None or not Path(LMOD_INIT).is_file():
        print("error: needs dcm2niix and lmod installed natively (apt-get install dcm2niix lmod)")
        return 1
    paths, record = ensure_image("dcm2niix")
    with tempfile.TemporaryDirectory(prefix="nd-bench-install-") as tmp:
        prefix = Path(tmp) / "installs"
        installed = install_image(record, prefix)
        wrapper = str(installed.bin_dir / "dcm2niix")
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": os.environ.get("HOME", "/root"),
            "LMOD_IGNORE_CACHE": "1",
        }
        lmod = f"source {LMOD_INIT}; "
        samples = interleaved(
            {
                "bash: lmod init + native": ["bash", "-c", f"{lmod}{native} -h"],
                "bash: lmod init + module load + wrapped": [
                    "bash",
                    "-c",
                    f"{lmod}module use {prefix}/modules; module load dcm2niix; dcm2niix -h",
                ],
                "bash: . activate + wrapped": [
                    "bash",
                    "-c",
                    f". {installed.directory}/activate; dcm2niix -h",
                ],
            },
            args.runs,
            env,
        )
        print_table(
            f"module load + first 'dcm2niix -h', {args.runs} runs each",
            samples,
            baseline="bash: lmod init + native",
        )
        exec_argv = [sys.executable, "-m", "neurodesk", "exec", "dcm2niix", "--", "dcm2niix", "-h"]
        samples = interleaved(
            {
                "neurodesk exec": exec_argv,
                "wrapper": [wrapper, "-h"],
                "native (apt)": [native, "-h"],
            },
            args.runs,
            dict(os.environ, NEURODESK_HOME=str(paths.home)),
        )
        print_table(
            f"dcm2niix -h: wrapper vs neurodesk exec, {args.runs} runs each",
            samples,
            baseline="neurodesk exec",
        )
        fake = Path(tmp) / "fakebin"
        fake.mkdir()
        (fake / "bwrap").symlink_to(shutil.which("true") or "/bin/true")
        shell_work = {
            "sh -c 'exec true'": ["sh", "-c", "exec true"],
            "wrapper, bwrap=true": [wrapper, "-h", "some file", "*"],
        }
        fake_env = {"PATH": f"{fake}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
        print_table(
            f"the wrapper's own shell work (wall time), {args.runs * 4} runs each",
            interleaved(shell_work, args.runs * 4, fake_env),
            baseline="sh -c 'exec true'",
        )
        print_table(
            f"the wrapper's own shell work (CPU time, user+sys), {args.runs * 4} runs each",
            interleaved_cpu(shell_work, args.runs * 4, fake_env),
            baseline="sh -c 'exec true'",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
