"""Jupyter kernels for the example notebooks: on the host, or inside any image with Python.

An image that ships ``ipykernel`` runs its own (as ``neurodesk desktop``'s kernels do). Tool
images rarely do (nilearn's, dipy's, dcm2bids' have Python but no Jupyter), so for them the
kernel machinery of *this* Python is lent to the image's Python: the distributions ipykernel
needs (its requirement closure, read from their metadata, never the image's own libraries
such as numpy) are made visible through a directory of links, bound read-only with the host
site-packages they point to, and put on ``PYTHONPATH``. This works when the image's Python has
the same major.minor version as ours (checked first; otherwise the notebook is skipped with
that reason).
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import json
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement

from neurodesk.paths import Paths
from neurodesk.store import ImageRecord
from neurodesk.store.atomic import write_text

HOST_KERNEL = "host"


def _closure(root: str) -> list[metadata.Distribution]:
    seen: dict[str, metadata.Distribution] = {}
    todo = [root]
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen[key] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(seen.values())


def _top_levels(dist: metadata.Distribution) -> set[str]:
    names = set()
    for file in dist.files or []:
        first = file.parts[0]
        if first in ("..", "__pycache__") or first.endswith((".dist-info", ".egg-info")):
            continue
        names.add(first)
    return names


def kernel_support(paths: Paths) -> tuple[Path, Path]:
    """(links dir, host site-packages it points into) for lending ipykernel to an image."""
    dists = _closure("ipykernel")
    site = Path(str(metadata.distribution("ipykernel").locate_file(""))).resolve()
    key = hashlib.sha256(
        json.dumps(
            [sys.version, str(site), sorted(f"{d.name}={d.version}" for d in dists)]
        ).encode()
    ).hexdigest()[:16]
    support = paths.cache / "kernel-support" / key
    if not (support / ".complete").is_file():
        support.mkdir(parents=True, exist_ok=True)
        for dist in dists:
            for name in _top_levels(dist):
                link = support / name
                if not link.is_symlink() and (site / name).exists():
                    link.symlink_to(site / name)
        write_text(support / ".complete", "")
    return support, site


def image_python_version(image: ImageRecord) -> str | None:
    """``3.11`` for the image's ``python3`` (run in the image), or None when it has none."""
    proc = subprocess.run(
        [sys.executable, "-m", "neurodesk", "exec", _spec(image), "--", "python3", "-c",
         "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    return proc.stdout.strip() if proc.returncode == 0 else None


def _spec(image: ImageRecord) -> str:
    return f"{image.name}/{image.version}/{image.builddate}"


def host_kernelspec() -> dict[str, object]:
    return {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (host, neurodesk)",
        "language": "python",
    }


def image_kernelspec(paths: Paths, image: ImageRecord) -> dict[str, object]:
    support, site = kernel_support(paths)
    return {
        "argv": [
            sys.executable, "-m", "neurodesk", "exec",
            "--bind", f"{support}:{support}:ro", "--bind", f"{site}:{site}:ro",
            "--env", f"PYTHONPATH={support}",
            _spec(image), "--",
            "python3", "-m", "ipykernel_launcher", "-f", "{connection_file}",
        ],
        "display_name": f"{image.name} {image.version} (container)",
        "language": "python",
        "env": {"NEURODESK_HOME": str(paths.home)},
    }  # fmt: skip


def write_kernelspec(kernels_dir: Path, name: str, spec: dict[str, object]) -> None:
    write_text(kernels_dir / name / "kernel.json", json.dumps(spec, indent=2))
