"""Jupyter kernels that run inside container images: detection and kernelspecs.

An image provides a kernel when its PATH has a ``python3`` and that Python's prefix holds the
``ipykernel`` package. The kernelspec runs ``neurodesk exec IMAGE -- python3 -m
ipykernel_launcher -f {connection_file}``: the connection file is in Jupyter's runtime directory
(under $HOME or /tmp, both bound by the runtime) and the kernel's ports are on the host's
loopback, which the container shares.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

from neurodesk.desktop.catalog import newest_images
from neurodesk.desktop.icons import tool_svg
from neurodesk.paths import Paths
from neurodesk.store import ImageRecord, Store
from neurodesk.store.atomic import write_text

KERNEL_PREFIX = "nd-"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The marker in a kernelspec's metadata that says we wrote it (and may replace or remove it).
MARKER = "neurodesk"


def _exists(rootfs: Path, path: str) -> bool:
    # lexists: /usr/bin/python3 is usually a symlink whose absolute target is inside the image.
    return (rootfs / path.lstrip("/")).is_symlink() or (rootfs / path.lstrip("/")).exists()


def find_kernel_python(record: ImageRecord) -> str | None:
    """The in-image path of a python3 that can import ipykernel, or None."""
    rootfs = record.rootfs
    for directory in record.env.get("PATH", DEFAULT_PATH).split(":"):
        if not directory.startswith("/") or not _exists(rootfs, f"{directory}/python3"):
            continue
        prefix = Path(directory).parent.as_posix()
        patterns = [f"{prefix}/lib/python3*/site-packages", f"{prefix}/lib/python3*/dist-packages"]
        if prefix in ("/usr", "/usr/local"):
            patterns.append("/usr/lib/python3/dist-packages")  # Debian's python3-* packages
        for pattern in patterns:
            for site in rootfs.glob(pattern.lstrip("/")):
                if (site / "ipykernel" / "__init__.py").is_file():
                    return f"{directory}/python3"
        return None  # the first python3 on PATH is the one `python3` runs
    return None


def kernel_name(record: ImageRecord) -> str:
    """``nd-<name>-<version>``, reduced to the characters Jupyter allows in kernel names."""
    raw = f"{KERNEL_PREFIX}{record.name}-{record.version}".lower()
    return re.sub(r"[^a-z0-9._-]", "-", raw)


def kernelspec(record: ImageRecord, python: str, home: Path) -> dict[str, object]:
    return {
        "argv": [
            sys.executable,
            "-m",
            "neurodesk",
            "exec",
            f"{record.name}/{record.version}/{record.builddate}",
            "--",
            python,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
        ],
        "display_name": f"{record.name} {record.version} (container)",
        "language": "python",
        "env": {"NEURODESK_HOME": str(home)},
        "metadata": {MARKER: {"image": record.id, "python": python}},
    }


def _ours(spec_dir: Path) -> bool:
    try:
        data = json.loads((spec_dir / "kernel.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and MARKER in (data.get("metadata") or {})


def write_kernelspecs(paths: Paths, kernels_dir: Path) -> dict[str, str]:
    """One kernelspec per image name/version that provides a kernel; stale ones of ours removed.

    Returns image id → kernel name.
    """
    kernels_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    for record in newest_images(Store(paths.store)):
        python = find_kernel_python(record)
        if python is None:
            continue
        name = kernel_name(record)
        spec = json.dumps(kernelspec(record, python, paths.home), indent=2) + "\n"
        write_text(kernels_dir / name / "kernel.json", spec)
        write_text(kernels_dir / name / "logo-svg.svg", tool_svg(record.name))  # launcher icon
        written[record.id] = name
    keep = set(written.values())
    for spec_dir in kernels_dir.glob(f"{KERNEL_PREFIX}*"):
        if spec_dir.name not in keep and _ours(spec_dir):
            shutil.rmtree(spec_dir, ignore_errors=True)
    return written
