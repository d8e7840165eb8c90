"""The demo, step by step: every layer of the system on one real tool."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from neurodesk.build.build import build_recipe, choose_builder
from neurodesk.demo.check import CheckResult, check_nifti
from neurodesk.demo.dicom import SeriesGeometry, write_series
from neurodesk.errors import ExternalCommandError, MissingToolError, NeurodeskError
from neurodesk.install.installer import install_image
from neurodesk.paths import Paths
from neurodesk.progress import Reporter
from neurodesk.recipe import find_recipe
from neurodesk.systools import require

STEPS = 5


@dataclass(frozen=True)
class DemoResult:
    nifti: Path
    check: CheckResult
    image_id: str


def _convert(bin_dir: Path, dicom: Path, out: Path) -> Path:
    """Call plain ``dcm2niix`` by name, found on PATH through the installed wrapper."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run(
        ["dcm2niix", "-z", "n", "-b", "y", "-f", "phantom", "-o", str(out), str(dicom)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ExternalCommandError(
            f"dcm2niix exited with {proc.returncode}",
            log_tail=(proc.stdout + proc.stderr).splitlines()[-20:],
        )
    niftis = sorted(out.glob("*.nii"))
    if len(niftis) != 1:
        raise NeurodeskError(f"dcm2niix wrote {len(niftis)} NIfTI files, expected 1, in {out}")
    return niftis[0]


def check_requirements(paths: Paths) -> None:
    """Fail early, in one line, when a program the demo needs is missing."""
    require("bwrap", "run containers")
    choose_builder(paths)
    import importlib.util

    for module in ("pydicom", "nibabel"):
        if importlib.util.find_spec(module) is None:
            raise MissingToolError(
                f"the Python package '{module}' is not installed (needed by the demo)",
                hint="pip install 'neurodesk[data]'",
            )


def run_demo(paths: Paths, reporter: Reporter) -> DemoResult:
    check_requirements(paths)
    builder = choose_builder(paths)
    recipe_path = find_recipe("dcm2niix")

    reporter.step("Building the dcm2niix image from recipes/dcm2niix/build.yaml")
    result = build_recipe(
        recipe_path,
        paths,
        builder=builder,
        say=reporter.update,
        on_step=lambda n, total, text: reporter.update(f"step {n}/{total}: {text[:60]}"),
    )
    record = result.record
    reporter.done(f"{record.id} ({result.base_source} base), log {result.log}")

    reporter.step("Installing its commands as wrappers")
    install = install_image(record, paths.installs)
    reporter.done(f"{', '.join(install.commands)} in {install.bin_dir}")

    work = paths.work / "demo"
    reporter.step("Writing a synthetic DICOM series with pydicom")
    geometry = SeriesGeometry()
    dicom = write_series(work / "dicom", geometry)
    reporter.done(f"{geometry.slices} slices of {geometry.columns}x{geometry.rows} in {dicom}")

    reporter.step("Converting it with plain 'dcm2niix' (the wrapper runs it in the container)")
    nifti = _convert(install.bin_dir, dicom, work / "nifti")
    reporter.done(str(nifti))

    reporter.step("Checking the NIfTI with nibabel")
    check = check_nifti(nifti, geometry)
    if not check.ok:
        raise NeurodeskError(
            "the converted NIfTI does not match the series: " + "; ".join(check.problems)
        )
    reporter.done(
        f"shape {check.shape}, voxel {check.zooms} mm, orientation {''.join(check.axcodes)}"
    )
    return DemoResult(nifti, check, record.id)
