"""One decoded CT slice (``CTSlice``) and grouping slices into series ordered along the scan axis.

Positions follow DICOM's patient coordinate system (LPS, mm). The slice normal is the cross
product of the row and column direction cosines of ImageOrientationPatient, so for an axial
slice with the usual orientation ``(1, 0, 0, 0, 1, 0)`` the normal is +z (towards the head) and
``group_series`` orders slices from feet to head.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


def slice_normal(orientation: Sequence[float]) -> np.ndarray:
    """Unit normal of a slice from its 6 ImageOrientationPatient values (row then column cosines)."""
    values = np.asarray(orientation, dtype=np.float64)
    if values.shape != (6,):
        raise ValueError(f"ImageOrientationPatient needs 6 values, got {values.size}")
    normal = np.cross(values[:3], values[3:])
    length = float(np.linalg.norm(normal))
    if not np.isfinite(length) or length == 0.0:
        raise ValueError("ImageOrientationPatient row and column directions are parallel or zero")
    return normal / length


@dataclass(frozen=True, eq=False)
class CTSlice:
    """One CT frame in Hounsfield units with the geometry and identifiers needed to stack it.

    ``eq=False``: slices hold arrays, so they compare by identity (compare ``hu`` explicitly).
    """

    hu: np.ndarray
    """float32 (H, W), stored values after the modality LUT (RescaleSlope/RescaleIntercept)."""
    spacing_mm: tuple[float, float]
    """(row spacing, column spacing) in mm, i.e. DICOM PixelSpacing."""
    position_mm: tuple[float, float, float] | None
    """ImagePositionPatient of this frame (centre of the first pixel), None if not given."""
    orientation: tuple[float, ...] | None
    """ImageOrientationPatient (6 direction cosines), None if not given."""
    slice_location: float | None
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str | None
    frame: int
    """1-based frame number within the file."""
    number_of_frames: int
    instance_number: int | None
    slice_thickness_mm: float | None
    window: tuple[float, float] | None
    """(center, width) of the first VOI window stored with the image, if any."""

    @property
    def normal_position_mm(self) -> float | None:
        """Position of this slice along its own normal (mm); None without position or orientation."""
        if self.position_mm is None or self.orientation is None:
            return None
        return float(np.dot(self.position_mm, slice_normal(self.orientation)))

    @property
    def stack_position(self) -> float | None:
        """Sort key along the scan axis: the normal position (mm), else SliceLocation (mm), else
        InstanceNumber (a count, not mm); None when the slice has none of them."""
        position = self.normal_position_mm
        if position is not None:
            return position
        if self.slice_location is not None:
            return self.slice_location
        if self.instance_number is not None:
            return float(self.instance_number)
        return None


def _all_present(values: list[float | None]) -> list[float] | None:
    """``values`` as floats when none is missing, else None."""
    present = [float(value) for value in values if value is not None]
    return present if len(present) == len(values) else None


def _series_keys(slices: list[CTSlice]) -> list[float]:
    """One sort key per slice, from the best source that *every* slice of the series has.

    Mixing sources (mm for some slices, instance numbers for others) would interleave nonsense,
    so the whole series uses a common normal (the first slice's) when all slices have geometry,
    else SliceLocation, else InstanceNumber, else the input order.
    """
    first_orientation = slices[0].orientation if slices else None
    if first_orientation is not None:
        normal = slice_normal(first_orientation)
        along_normal = [
            float(np.dot(s.position_mm, normal))
            for s in slices
            if s.position_mm is not None and s.orientation is not None
        ]
        if len(along_normal) == len(slices):
            return along_normal
    for source in ([s.slice_location for s in slices], [s.instance_number for s in slices]):
        keys = _all_present([None if value is None else float(value) for value in source])
        if keys is not None:
            return keys
    return [float(index) for index in range(len(slices))]


def order_along_normal(slices: Iterable[CTSlice]) -> list[CTSlice]:
    """Slices of one series sorted along the scan axis (ties: instance number, frame, SOP UID)."""
    items = list(slices)
    keys = _series_keys(items)

    def rank(index: int) -> tuple[float, int, int, str, int]:
        item = items[index]
        instance = item.instance_number if item.instance_number is not None else 0
        return (keys[index], instance, item.frame, item.sop_instance_uid, index)

    return [items[index] for index in sorted(range(len(items)), key=rank)]


def group_series(slices: Iterable[CTSlice]) -> dict[str, list[CTSlice]]:
    """Group slices by SeriesInstanceUID (in order of first appearance), each ordered along z."""
    groups: dict[str, list[CTSlice]] = {}
    for ct_slice in slices:
        groups.setdefault(ct_slice.series_instance_uid, []).append(ct_slice)
    return {uid: order_along_normal(members) for uid, members in groups.items()}
