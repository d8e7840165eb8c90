"""Helpers for benchmarks: interleaved timing of commands and a printed table of medians."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from neurodesk.build.build import build_recipe
from neurodesk.paths import Paths
from neurodesk.recipe import find_recipe
from neurodesk.store import ImageRecord, Store


def time_once(argv: Sequence[str], env: Mapping[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
    return time.perf_counter() - start


def interleaved(
    variants: Mapping[str, Sequence[str]], runs: int, env: Mapping[str, str] | None = None
) -> dict[str, list[float]]:
    """Time each variant ``runs`` times, alternating, so drift hits all of them alike."""
    for argv in variants.values():  # warm caches once
        time_once(argv, env)
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(runs):
        for name, argv in variants.items():
            samples[name].append(time_once(argv, env))
    return samples


def print_table(title: str, samples: Mapping[str, list[float]], baseline: str) -> None:
    base = statistics.median(samples[baseline])
    table = Table(title=title)
    for column in ("variant", "runs", "median ms", "p90 ms", "added ms", f"ratio vs {baseline}"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for name, values in samples.items():
        median = statistics.median(values)
        p90 = statistics.quantiles(values, n=10)[-1]
        table.add_row(
            name,
            str(len(values)),
            f"{median * 1e3:.2f}",
            f"{p90 * 1e3:.2f}",
            f"{(median - base) * 1e3:+.2f}",
            f"{median / base:.2f}x",
        )
    Console().print(table)


def ensure_image(name: str) -> tuple[Paths, ImageRecord]:
    """The image ``name`` in $NEURODESK_HOME's store, built from its recipe if missing."""
    paths = Paths.from_env()
    store = Store(paths.store)
    try:
        return paths, store.resolve(name)
    except Exception:
        print(f"building {name} into {paths.home} first ...", flush=True)
        return paths, build_recipe(find_recipe(name), paths).record


def env_with_path(bin_dir: Path) -> dict[str, str]:
    return dict(os.environ, PATH=f"{bin_dir}:{os.environ.get('PATH', '')}")
