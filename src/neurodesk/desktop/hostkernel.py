"""The host Python kernel of the desktop, able to ``%module load`` installed tools.

Our kernelspec named ``python3`` comes first on JUPYTER_PATH, so it is the notebook's usual
"Python 3 (ipykernel)" with one addition: IPython loads :mod:`neurodesk.desktop.lmod`, which
gives ``%module`` / ``%ml`` (and ``neurodesk.desktop.lmod.module(...)`` from code). The kernel
inherits the server's MODULEPATH, so the tools installed under $NEURODESK_HOME are there.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from neurodesk.store.atomic import write_text

NAME = "python3"
EXTENSION = "neurodesk.desktop.lmod"


def host_kernelspec() -> dict[str, object]:
    return {
        "argv": [
            sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
            f"--IPKernelApp.extensions={EXTENSION}",
        ],
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "metadata": {"debugger": True, "neurodesk": {"host": True}},
    }


def write_host_kernelspec(kernels_dir: Path) -> str:
    write_text(kernels_dir / NAME / "kernel.json", json.dumps(host_kernelspec(), indent=2) + "\n")
    return NAME
