"""Write synthetic slices as a standard CT Image Storage DICOM series (Explicit VR Little Endian).

HU after the modality LUT (stored * RescaleSlope + RescaleIntercept) equals the PNG's HU exactly.
Identifiers are synthetic and deterministic: UIDs derive from the seed and the slice's place, the
patient name is ``SYNTH^P{patient:06d}``; no birth date is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid

from fsd.data.synth.patient import SeriesPlan


@dataclass(frozen=True)
class SeriesIdentity:
    """UIDs and display settings shared by every slice of a series."""

    study_uid: str
    series_uid: str
    frame_uid: str
    seed: int
    sex: str
    window: tuple[int, int]
    table_z: float  # patient z (mm) of depth 0; z = table_z - depth
    signed: bool
    intercept: int


def series_identity(seed: int, series: SeriesPlan, sex: str, window: tuple[int, int]) -> SeriesIdentity:
    """Deterministic identity of a series; its own random stream, so writing DICOM or not never
    changes the rest of the data set."""
    rng = np.random.default_rng(
        np.random.SeedSequence(seed, spawn_key=(4, series.patient, series.study, series.series))
    )
    base = ["fsd-synth", str(seed), str(series.patient)]
    # unsigned storage with intercept -1024 cannot hold the -2048/-3024 padding: use signed then
    signed = series.scanner.padding_hu is not None or rng.random() < 0.5
    intercept = -1024 if (not signed or rng.random() < 0.5) else 0
    return SeriesIdentity(
        study_uid=generate_uid(entropy_srcs=[*base, "study", str(series.study)]),
        series_uid=generate_uid(entropy_srcs=[*base, "series", str(series.study), str(series.series)]),
        frame_uid=generate_uid(entropy_srcs=[*base, "frame", str(series.study), str(series.series)]),
        seed=seed,
        sex=sex,
        window=window,
        table_z=float(round(rng.uniform(-200.0, 200.0), 1)),
        signed=signed,
        intercept=intercept,
    )


def _ds(value: float) -> str:
    """A Decimal String value as precise as its 16 characters allow."""
    for digits in range(12, 4, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    return f"{value:.4e}"


def series_template(series: SeriesPlan, identity: SeriesIdentity) -> Dataset:
    """Every element shared by the slices of a series (file meta included)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    date = series.study_date.strftime("%Y%m%d")
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = f"{9 + series.series:02d}{series.study * 7 % 60:02d}00"
    ds.AccessionNumber = f"SYN{series.patient:06d}{series.study:02d}"
    ds.Modality = "CT"
    ds.Manufacturer = "FSD synthetic generator"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "Synthetic CT (research use only)"
    ds.SeriesDescription = f"{series.body_part} {series.scene.phase.value} {series.interval:g}mm"
    ds.PatientName = f"SYNTH^P{series.patient:06d}"
    ds.PatientID = f"SYNTH{series.patient:06d}"
    ds.PatientSex = identity.sex
    ds.PatientAge = f"{series.age:03d}Y"
    ds.BodyPartExamined = series.body_part
    ds.SliceThickness = _ds(series.interval)
    ds.SpacingBetweenSlices = _ds(series.interval)
    ds.KVP = "120"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = identity.study_uid
    ds.SeriesInstanceUID = identity.series_uid
    ds.StudyID = f"{series.study}"
    ds.SeriesNumber = series.series
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.FrameOfReferenceUID = identity.frame_uid
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = series.size
    ds.Columns = series.size
    ds.PixelSpacing = [_ds(series.spacing), _ds(series.spacing)]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if identity.signed else 0
    low, high = identity.window
    ds.WindowCenter = _ds((low + high) / 2.0)
    ds.WindowWidth = _ds(high - low)
    ds.RescaleIntercept = str(identity.intercept)
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    return ds


def fill_slice(
    ds: Dataset, series: SeriesPlan, identity: SeriesIdentity, index: int, hu: np.ndarray
) -> Dataset:
    """Set the per-slice elements (UID, number, position, pixels) on a series template."""
    sop_uid = generate_uid(entropy_srcs=["fsd-synth", str(identity.seed), series.folder, "slice", str(index)])
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.SOPInstanceUID = sop_uid
    ds.InstanceNumber = index
    z = identity.table_z - series.depth_of(index)
    corner = -(series.size - 1) / 2.0 * series.spacing
    ds.ImagePositionPatient = [_ds(corner), _ds(corner), _ds(z)]
    ds.SliceLocation = _ds(z)
    stored = hu.astype(np.int32) - identity.intercept
    dtype = np.int16 if identity.signed else np.uint16
    info = np.iinfo(dtype)
    if stored.min() < info.min or stored.max() > info.max:
        raise ValueError(
            f"HU range {hu.min()}..{hu.max()} does not fit {dtype.__name__} storage with intercept {identity.intercept}"
        )
    ds.PixelData = stored.astype(dtype).tobytes()
    return ds


def slice_path(root: Path, series: SeriesPlan, index: int) -> Path:
    return root / "dicom" / series.folder / f"{index:03d}.dcm"


def write_slice(
    path: Path, template: Dataset, series: SeriesPlan, identity: SeriesIdentity, index: int, hu: np.ndarray
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fill_slice(template, series, identity, index, hu).save_as(path, enforce_file_format=True)
