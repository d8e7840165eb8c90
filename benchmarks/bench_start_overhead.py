"""Start overhead of a wrapped tool against the same tool installed natively (issue 2).

Runs ``dcm2niix -h`` through the installed wrapper (bubblewrap + the image's root filesystem)
and the host's apt-installed ``/usr/bin/dcm2niix``, interleaved, and prints medians and the
ratio. Usage: python -m benchmarks.bench_start_overhead [--runs N]
"""

from __future__ import annotations

import argparse
import shutil
import sys

from benchmarks.common import ensure_image, interleaved, print_table
from neurodesk.install.installer import install_image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50, help="runs per variant (default 50)")
    args = parser.parse_args()
    native = shutil.which("dcm2niix", path="/usr/bin:/usr/local/bin")
    if native is None:
        print("error: dcm2niix is not installed natively (sudo apt-get install dcm2niix)")
        return 1
    paths, record = ensure_image("dcm2niix")
    wrapper = install_image(record, paths.installs).bin_dir / "dcm2niix"
    samples = interleaved(
        {"native (apt)": [native, "-h"], "wrapped (bwrap)": [str(wrapper), "-h"]}, args.runs
    )
    print_table(
        f"dcm2niix -h start time, {args.runs} runs each, image {record.id}",
        samples,
        baseline="native (apt)",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
