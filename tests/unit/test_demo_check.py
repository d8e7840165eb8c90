"""The demo's NIfTI check must catch what a broken conversion would get wrong."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from pydicom import dcmread

from neurodesk.demo.check import check_nifti
from neurodesk.demo.dicom import SeriesGeometry, phantom, write_series


def save(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def test_written_series_has_the_geometry_asked_for(tmp_path: Path) -> None:
    geometry = SeriesGeometry()
    write_series(tmp_path, geometry)
    files = sorted(tmp_path.glob("*.dcm"))
    assert len(files) == geometry.slices
    last = dcmread(files[-1])
    assert (last.Rows, last.Columns) == (geometry.rows, geometry.columns)
    assert float(last.ImagePositionPatient[2]) == pytest.approx(
        geometry.origin[2] + (geometry.slices - 1) * geometry.slice_spacing
    )
    assert np.array_equal(last.pixel_array.T, phantom(geometry)[:, :, -1])


def test_correct_volume_passes_even_with_flipped_axis(tmp_path: Path) -> None:
    geometry = SeriesGeometry()
    data, affine = phantom(geometry), geometry.ras_affine()
    # flip the second axis and compensate in the affine, as dcm2niix does
    flip = np.eye(4)
    flip[1, 1], flip[1, 3] = -1, geometry.rows - 1
    result = check_nifti(save(tmp_path / "ok.nii", data[:, ::-1, :], affine @ flip), geometry)
    assert result.ok, result.problems
    assert result.axcodes == ("L", "A", "S")


@pytest.mark.parametrize("defect", ["flip-data", "wrong-zoom", "shape"])
def test_defects_are_detected(tmp_path: Path, defect: str) -> None:
    geometry = SeriesGeometry()
    data, affine = phantom(geometry), geometry.ras_affine()
    if defect == "flip-data":
        data = data[::-1, :, :]
    elif defect == "wrong-zoom":
        affine = affine @ np.diag([1, 1, 2.0, 1])
    else:
        data = data[:, :, :-1]
    result = check_nifti(save(tmp_path / "bad.nii", np.ascontiguousarray(data), affine), geometry)
    assert not result.ok
