"""Checking a converted NIfTI against the series it came from: shape, voxel size, orientation.

Orientation is checked where it matters: the intensity at a given point in scanner space must
be the same in the NIfTI as in the DICOM series, whatever flips the converter chose.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neurodesk.demo.dicom import SeriesGeometry, phantom


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    problems: list[str]
    shape: tuple[int, ...]
    zooms: tuple[float, ...]
    axcodes: tuple[str, ...]


def check_nifti(path: Path, geometry: SeriesGeometry | None = None) -> CheckResult:
    import nibabel as nib

    geometry = geometry or SeriesGeometry()
    image: Any = nib.load(str(path))
    data = np.asarray(image.dataobj)
    shape = tuple(int(s) for s in data.shape)
    zooms = tuple(round(float(z), 4) for z in image.header.get_zooms()[:3])
    axcodes = tuple(nib.aff2axcodes(image.affine))  # type: ignore[no-untyped-call]
    problems: list[str] = []

    expected_shape = (geometry.columns, geometry.rows, geometry.slices)
    if shape != expected_shape:
        problems.append(f"shape {shape} != expected {expected_shape}")
    expected_zooms = (geometry.column_spacing, geometry.row_spacing, geometry.slice_spacing)
    if not np.allclose(zooms, expected_zooms, atol=1e-3):
        problems.append(f"voxel size {zooms} != expected {expected_zooms}")

    if not problems:
        source = phantom(geometry)
        # every DICOM voxel → scanner (RAS) mm → NIfTI voxel index
        to_nifti = np.linalg.inv(image.affine) @ geometry.ras_affine()
        grid = np.indices(source.shape).reshape(3, -1)
        mapped = to_nifti @ np.vstack([grid, np.ones(grid.shape[1])])
        index = np.rint(mapped[:3]).astype(int)
        if np.abs(mapped[:3] - index).max() > 1e-2:
            problems.append("voxel grid of the NIfTI does not line up with the DICOM series")
        elif (index < 0).any() or (index >= np.array(shape)[:, None]).any():
            problems.append("orientation/position of the NIfTI does not match the DICOM series")
        else:
            converted = data[index[0], index[1], index[2]]
            mismatched = int((converted != source[grid[0], grid[1], grid[2]]).sum())
            if mismatched:
                problems.append(
                    f"{mismatched} voxels differ from the DICOM series at equal positions"
                )
    return CheckResult(not problems, problems, shape, zooms, axcodes)
