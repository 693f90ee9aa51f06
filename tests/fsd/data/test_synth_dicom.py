"""`--dicom` writes standard CT series whose HU equal the PNGs' and whose geometry is consistent."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian

from fsd.data.synth import generate_dataset
from fsd.data.synth.dicom_series import series_identity
from fsd.data.synth.patient import plan_patient
from fsd.io.png import read_deeplesion_png

SIZE = 96


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth_dicom") / "set"
    generate_dataset(root, patients=2, size=SIZE, seed=11, dicom=True, progress=False)
    return root


@pytest.fixture(scope="module")
def series_files(dataset: Path) -> dict[str, list[Path]]:
    grouped: dict[str, list[Path]] = defaultdict(list)
    for path in sorted((dataset / "dicom").rglob("*.dcm")):
        grouped[path.parent.name].append(path)
    return grouped


@pytest.fixture(scope="module")
def csv_rows(dataset: Path) -> list[dict[str, str]]:
    with (dataset / "DL_info.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_one_dicom_file_per_png(dataset: Path) -> None:
    pngs = {
        p.relative_to(dataset / "Images_png").with_suffix("") for p in (dataset / "Images_png").rglob("*.png")
    }
    dicoms = {p.relative_to(dataset / "dicom").with_suffix("") for p in (dataset / "dicom").rglob("*.dcm")}
    assert pngs and pngs == dicoms


def test_files_are_standard_ct_image_storage(series_files: dict[str, list[Path]]) -> None:
    for paths in series_files.values():
        ds = pydicom.dcmread(paths[0])
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.file_meta.MediaStorageSOPClassUID == CTImageStorage == ds.SOPClassUID
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.preamble is not None and len(ds.preamble) == 128
        assert ds.Modality == "CT"
        assert (ds.Rows, ds.Columns) == (SIZE, SIZE)
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.SamplesPerPixel) == (16, 16, 15, 1)
        assert ds.PixelRepresentation in (0, 1)
        assert ds.PhotometricInterpretation == "MONOCHROME2"
        assert float(ds.RescaleSlope) == 1.0
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert ds.PatientName == f"SYNTH^P{int(paths[0].parent.name[:6]):06d}"
        assert ds.PatientSex in ("M", "F") and ds.PatientAge.endswith("Y")
        assert "PatientBirthDate" not in ds
        assert float(ds.WindowWidth) > 0
        for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.FrameOfReferenceUID):
            assert UID(uid).is_valid


def test_hu_after_the_modality_lut_equals_the_png(dataset: Path, series_files: dict[str, list[Path]]) -> None:
    checked = 0
    for folder, paths in series_files.items():
        for path in paths:
            ds = pydicom.dcmread(path)
            hu = apply_modality_lut(ds.pixel_array, ds)
            png = read_deeplesion_png(dataset / "Images_png" / folder / f"{path.stem}.png")
            np.testing.assert_array_equal(hu, png)
            checked += 1
    assert checked > 10


def test_geometry_tags_are_consistent_within_a_series(
    series_files: dict[str, list[Path]], csv_rows: list[dict[str, str]]
) -> None:
    spacing_of = {
        row["File_name"][:12]: [float(v) for v in row["Spacing_mm_px_"].split(", ")] for row in csv_rows
    }
    for folder, paths in series_files.items():
        datasets = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
        x_spacing, _, interval = spacing_of[folder]
        indices = [int(p.stem) for p in paths]
        z = [float(ds.ImagePositionPatient[2]) for ds in datasets]
        for ds, index, position in zip(datasets, indices, z):
            assert ds.InstanceNumber == index
            assert float(ds.SliceLocation) == pytest.approx(position, abs=1e-3)
            assert [float(v) for v in ds.PixelSpacing] == pytest.approx([x_spacing, x_spacing])
            assert float(ds.SliceThickness) == pytest.approx(interval)
            assert float(ds.ImagePositionPatient[0]) == pytest.approx(-(SIZE - 1) / 2 * x_spacing, abs=1e-3)
        # z falls by one slice interval per slice index (head first, numbered towards the feet)
        for (i, zi), (j, zj) in zip(zip(indices, z), zip(indices[1:], z[1:])):
            assert zi - zj == pytest.approx((j - i) * interval, abs=1e-5)
        assert len({ds.SeriesInstanceUID for ds in datasets}) == 1
        assert len({ds.FrameOfReferenceUID for ds in datasets}) == 1
        assert len({ds.SOPInstanceUID for ds in datasets}) == len(datasets)
    studies = {folder[:9]: set() for folder in series_files}
    for folder, paths in series_files.items():
        studies[folder[:9]].add(pydicom.dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID)
    assert all(len(uids) == 1 for uids in studies.values())


def test_uids_are_deterministic_per_seed() -> None:
    plan, _ = plan_patient(4, 1, 64)
    series = plan.series[0]
    first = series_identity(4, series, "F", (-175, 275))
    assert first == series_identity(4, series, "F", (-175, 275))
    assert first.series_uid != series_identity(5, series, "F", (-175, 275)).series_uid
