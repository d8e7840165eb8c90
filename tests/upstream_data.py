"""A generated apps.json in upstream's format (neurocommand), large like the real one.

``make_apps_json()`` gives ~110 menus, >= 300 containers, GUI entries and upstream's 25
categories, deterministically; ``fsl 6.0.7.4 (20231025)`` and a few real names are always in.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from neurodesk.catalog.categories import CATEGORIES

REAL = [
    ("fsl", ["6.0.5.1", "6.0.7.4"], "fsleyes"),
    ("afni", ["23.3.02", "24.1.02"], "suma"),
    ("ants", ["2.4.3", "2.5.0"], ""),
    ("freesurfer", ["7.3.2", "7.4.1"], "freeview"),
    ("mrtrix3", ["3.0.4"], "mrview"),
    ("fmriprep", ["23.2.1"], ""),
    ("spm12", ["r7771"], "spm12"),
    ("dcm2niix", ["v1.0.20240202"], ""),
]


def make_apps_json(tools: int = 110, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    menus: dict[str, Any] = {}
    names = list(REAL)
    for number in range(tools - len(REAL)):
        versions = [
            f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{v}" for v in range(rng.randint(2, 4))
        ]
        gui = f"tool{number}view" if number % 5 == 0 else ""
        names.append((f"tool{number:03d}", versions, gui))
    for name, versions, gui in names:
        apps: dict[str, dict[str, str]] = {}
        for index, version in enumerate(versions):
            date = "20231025" if (name, version) == ("fsl", "6.0.7.4") else (
                f"202{rng.randint(1, 5)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
            )  # fmt: skip
            apps[f"{name} {version}"] = {"version": date, "exec": ""}
            if gui:
                apps[f"{gui}GUI-{name} {version}"] = {"version": date, "exec": gui}
            del index
        categories = rng.sample(CATEGORIES, rng.randint(1, 3))
        menus[name] = {"apps": apps, "categories": categories}
    return menus


def write_apps_json(path: Path, **kwargs: Any) -> Path:
    path.write_text(json.dumps(make_apps_json(**kwargs), indent=4))
    return path


def count_containers(data: dict[str, Any]) -> int:
    return sum(1 for menu in data.values() for key in menu["apps"] if "GUI-" not in key)
