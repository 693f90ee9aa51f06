"""DeepLesion's DL_info.csv: parsing its 18 columns into key-slice records.

One csv row is one lesion; rows sharing a File_name are the lesions of one key slice. Boxes and
RECIST end points in the csv are 1-based pixel coordinates; the records hold them 0-based.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from fsd.errors import DataError

DL_INFO_COLUMNS: tuple[str, ...] = (
    "File_name",
    "Patient_index",
    "Study_index",
    "Series_ID",
    "Key_slice_index",
    "Measurement_coordinates",
    "Bounding_boxes",
    "Lesion_diameters_Pixel_",
    "Normalized_lesion_location",
    "Coarse_lesion_type",
    "Possibly_noisy",
    "Slice_range",
    "Spacing_mm_px_",
    "Image_size",
    "DICOM_windows",
    "Patient_gender",
    "Patient_age",
    "Train_Val_Test",
)

SPLIT_CODES: dict[str, int] = {"train": 1, "val": 2, "test": 3}


@dataclass(frozen=True)
class LesionRecord:
    """One annotated lesion on a key slice (0-based pixel coordinates of the original image)."""

    box: tuple[float, float, float, float]
    recist: tuple[float, ...]
    diameters_px: tuple[float, float]
    location: tuple[float, float, float]
    lesion_type: int
    noisy: bool


@dataclass(frozen=True)
class KeySliceRecord:
    """A key slice and the lesions marked on it."""

    file_name: str
    patient: int
    study: int
    series: int
    key_slice: int
    slice_range: tuple[int, int]
    spacing_mm: tuple[float, float, float]
    image_size: tuple[int, int]
    window: tuple[float, float]
    gender: str
    age: int | None
    split: int
    lesions: tuple[LesionRecord, ...]

    @property
    def folder(self) -> str:
        """Images_png sub-folder: File_name without the slice part."""
        return self.file_name.rsplit("_", 1)[0]

    def slice_path(self, root: Path, index: int) -> Path:
        return root / "Images_png" / self.folder / f"{index:03d}.png"

    @property
    def pixel_spacing_rc(self) -> tuple[float, float]:
        """(row, column) spacing in mm, DICOM PixelSpacing order."""
        return self.spacing_mm[1], self.spacing_mm[0]

    @property
    def slice_interval_mm(self) -> float:
        return self.spacing_mm[2]


def _floats(text: str, count: int, column: str, where: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise DataError(f"{where}: column {column} must hold numbers, got {text!r}") from None
    if len(values) != count:
        raise DataError(f"{where}: column {column} must hold {count} numbers, got {len(values)}")
    return values


def _int(text: str, column: str, where: str) -> int:
    try:
        return int(float(text))
    except ValueError:
        raise DataError(f"{where}: column {column} must be an integer, got {text!r}") from None


def read_dl_info(csv_path: str | Path) -> list[KeySliceRecord]:
    """Parse DL_info.csv into key-slice records, in the order of first appearance."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(f"DeepLesion annotation file not found: {csv_path}")
    grouped: dict[str, dict] = {}
    with csv_path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != DL_INFO_COLUMNS:
            raise DataError(
                f"{csv_path}: header must be the 18 DeepLesion columns ({', '.join(DL_INFO_COLUMNS)})"
            )
        for line_number, row in enumerate(reader, start=2):
            if not row:
                continue
            where = f"{csv_path}:{line_number}"
            if len(row) != len(DL_INFO_COLUMNS):
                raise DataError(f"{where}: expected 18 columns, got {len(row)}")
            values = dict(zip(DL_INFO_COLUMNS, row))
            name = values["File_name"].strip()
            box = _floats(values["Bounding_boxes"], 4, "Bounding_boxes", where)
            lesion = LesionRecord(
                box=tuple(v - 1.0 for v in box),  # type: ignore[arg-type]
                recist=tuple(v - 1.0 for v in _floats(values["Measurement_coordinates"], 8, "Measurement_coordinates", where)),
                diameters_px=_floats(values["Lesion_diameters_Pixel_"], 2, "Lesion_diameters_Pixel_", where),  # type: ignore[arg-type]
                location=_floats(values["Normalized_lesion_location"], 3, "Normalized_lesion_location", where),  # type: ignore[arg-type]
                lesion_type=_int(values["Coarse_lesion_type"], "Coarse_lesion_type", where),
                noisy=_int(values["Possibly_noisy"], "Possibly_noisy", where) == 1,
            )
            if name not in grouped:
                slice_range = _floats(values["Slice_range"], 2, "Slice_range", where)
                spacing = _floats(values["Spacing_mm_px_"], 3, "Spacing_mm_px_", where)
                size = _floats(values["Image_size"], 2, "Image_size", where)
                window = _floats(values["DICOM_windows"], 2, "DICOM_windows", where)
                age_text = values["Patient_age"].strip()
                if min(spacing) <= 0:
                    raise DataError(f"{where}: Spacing_mm_px_ must be positive, got {spacing}")
                grouped[name] = {
                    "file_name": name,
                    "patient": _int(values["Patient_index"], "Patient_index", where),
                    "study": _int(values["Study_index"], "Study_index", where),
                    "series": _int(values["Series_ID"], "Series_ID", where),
                    "key_slice": _int(values["Key_slice_index"], "Key_slice_index", where),
                    "slice_range": (int(slice_range[0]), int(slice_range[1])),
                    "spacing_mm": spacing,
                    "image_size": (int(size[0]), int(size[1])),
                    "window": window,
                    "gender": values["Patient_gender"].strip(),
                    "age": _int(age_text, "Patient_age", where) if age_text and age_text != "NaN" else None,
                    "split": _int(values["Train_Val_Test"], "Train_Val_Test", where),
                    "lesions": [],
                }
            grouped[name]["lesions"].append(lesion)
    return [KeySliceRecord(**{**fields, "lesions": tuple(fields["lesions"])}) for fields in grouped.values()]
