"""Writing a small synthetic MR DICOM series, so the demo and tests need no downloads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class SeriesGeometry:
    """An axial series: ``columns`` x ``rows`` pixels per slice, ``slices`` slices."""

    columns: int = 64
    rows: int = 48
    slices: int = 20
    column_spacing: float = 1.1  # mm between columns (along the row direction, x)
    row_spacing: float = 0.9  # mm between rows (along the column direction, y)
    slice_spacing: float = 2.5
    origin: tuple[float, float, float] = (-35.2, -21.6, -20.0)  # LPS, first voxel of slice 0

    def lps_affine(self) -> npt.NDArray[np.float64]:
        """Voxel (column, row, slice) → patient LPS coordinates in mm."""
        affine = np.eye(4)
        affine[:3, 0] = [self.column_spacing, 0.0, 0.0]
        affine[:3, 1] = [0.0, self.row_spacing, 0.0]
        affine[:3, 2] = [0.0, 0.0, self.slice_spacing]
        affine[:3, 3] = self.origin
        return affine

    def ras_affine(self) -> npt.NDArray[np.float64]:
        """The same mapping in RAS (NIfTI's convention): negate x and y."""
        return np.diag([-1.0, -1.0, 1.0, 1.0]) @ self.lps_affine()


def phantom(geometry: SeriesGeometry) -> npt.NDArray[np.uint16]:
    """Volume indexed [column, row, slice]: an ellipsoid on an asymmetric ramp.

    The ramp makes every flip or swap of axes visible to the check.
    """
    i, j, k = np.meshgrid(
        np.arange(geometry.columns),
        np.arange(geometry.rows),
        np.arange(geometry.slices),
        indexing="ij",
    )
    ramp = 3 * i + 7 * j + 29 * k
    centre = np.array([geometry.columns, geometry.rows, geometry.slices]) / 2
    inside = (
        ((i - centre[0]) / (0.4 * geometry.columns)) ** 2
        + ((j - centre[1]) / (0.35 * geometry.rows)) ** 2
        + ((k - centre[2]) / (0.45 * geometry.slices)) ** 2
    ) <= 1.0
    volume: npt.NDArray[np.uint16] = (ramp + 1000 * inside).astype(np.uint16)
    return volume


def write_series(directory: Path, geometry: SeriesGeometry | None = None) -> Path:
    """Write one DICOM file per slice into ``directory``; return the directory."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    geometry = geometry or SeriesGeometry()
    volume = phantom(geometry)
    directory.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    for k in range(geometry.slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.PatientName = "Demo^Phantom"
        ds.PatientID = "ND0001"
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.FrameOfReferenceUID = frame
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = "20260101"
        ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = "120000"
        ds.Modality = "MR"
        ds.Manufacturer = "neurodesk"
        ds.SeriesDescription = "t1_demo_phantom"
        ds.ProtocolName = "t1_demo_phantom"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.SeriesNumber = 1
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = k + 1
        ds.MagneticFieldStrength = 3
        ds.RepetitionTime = 2000
        ds.EchoTime = 3.5
        ds.FlipAngle = 9
        ds.SliceThickness = geometry.slice_spacing
        ds.SpacingBetweenSlices = geometry.slice_spacing
        ds.PixelSpacing = [geometry.row_spacing, geometry.column_spacing]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        position = geometry.lps_affine() @ np.array([0, 0, k, 1.0])
        ds.ImagePositionPatient = [round(float(v), 4) for v in position[:3]]
        ds.SliceLocation = round(float(position[2]), 4)
        ds.Rows, ds.Columns = geometry.rows, geometry.columns
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        # DICOM stores a slice row by row: array [row, column]
        ds.PixelData = np.ascontiguousarray(volume[:, :, k].T).tobytes()
        ds.save_as(directory / f"slice{k + 1:03d}.dcm", enforce_file_format=True)
    return directory
