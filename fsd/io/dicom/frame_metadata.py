"""Per-frame spacing, position, orientation, rescale, thickness and window of a CT file.

Missing required values are ``missing_tag``; unusable geometry is ``invalid_geometry``; a value
of the wrong kind is ``invalid_tag``.

Each value comes from the frame's Per-Frame Functional Groups item, then the Shared Functional
Groups (Enhanced and Legacy Converted Enhanced CT), then the top level of the data set (classic
CT Image Storage). A top-level ImagePositionPatient describes the first frame only. Spacing and
rescale are required; orientation must be two orthogonal unit vectors when present; thickness
and window are descriptive and simply unknown when unusable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from fsd.io.dicom.errors import INVALID_GEOMETRY, INVALID_TAG, MISSING_TAG, DicomError
from fsd.io.dicom.values import optional_float, tag_name, tag_value, to_floats


@dataclass(frozen=True)
class FrameMetadata:
    """What one frame needs besides its pixels: geometry, the modality LUT and display window."""

    spacing_mm: tuple[float, float]
    position_mm: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    slice_thickness_mm: float | None
    rescale: Dataset
    """RescaleSlope and RescaleIntercept only, as ``apply_modality_lut`` reads them."""
    window: tuple[float, float] | None


def read_frame_metadata(ds: Dataset, frames: int) -> list[FrameMetadata]:
    """Metadata of each of the ``frames`` frames, in frame order."""
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    per_frame = tag_value(ds, "PerFrameFunctionalGroupsSequence")
    per_frame_items = list(per_frame) if isinstance(per_frame, DicomSequence) else []
    metadata = []
    for index in range(frames):
        groups = [per_frame_items[index]] if index < len(per_frame_items) else []
        groups = [group for group in [*groups, shared] if isinstance(group, Dataset)]
        metadata.append(_frame_metadata(ds, groups, index))
    return metadata


def _frame_metadata(ds: Dataset, groups: list[Dataset], index: int) -> FrameMetadata:
    spacing_value = _frame_value(ds, groups, "PixelMeasuresSequence", "PixelSpacing")
    if spacing_value is None:
        raise _missing_frame_tag("PixelSpacing", "Pixel Measures")
    spacing = to_floats(spacing_value, "PixelSpacing", 2, INVALID_GEOMETRY)
    if min(spacing) <= 0:
        raise DicomError("The DICOM tag PixelSpacing (0028,0030) must be positive.", INVALID_GEOMETRY)

    # Functional groups give every frame its position; a top-level one describes the first frame.
    position_value = _frame_value(
        ds if index == 0 else Dataset(), groups, "PlanePositionSequence", "ImagePositionPatient"
    )
    position = None
    if position_value is not None:
        x, y, z = to_floats(position_value, "ImagePositionPatient", 3, INVALID_GEOMETRY)
        position = (x, y, z)
    orientation = _orientation(
        _frame_value(ds, groups, "PlaneOrientationSequence", "ImageOrientationPatient")
    )

    rescale = Dataset()
    for keyword, tag in (("RescaleSlope", 0x00281053), ("RescaleIntercept", 0x00281052)):
        value = _frame_value(ds, groups, "PixelValueTransformationSequence", keyword)
        if value is None:
            raise _missing_frame_tag(keyword, "Pixel Value Transformation")
        number = to_floats(value, keyword, 1, INVALID_TAG)[0]
        if keyword == "RescaleSlope" and number == 0:
            raise DicomError("The DICOM tag RescaleSlope (0028,1053) must not be 0.", INVALID_TAG)
        rescale.add(DataElement(tag, "FD", number))

    try:  # descriptive only: an unreadable or impossible thickness is simply unknown
        thickness_value = _frame_value(ds, groups, "PixelMeasuresSequence", "SliceThickness")
        thickness = (
            None
            if thickness_value is None
            else to_floats(thickness_value, "SliceThickness", 1, INVALID_TAG)[0]
        )
    except DicomError:
        thickness = None
    return FrameMetadata(
        spacing_mm=(spacing[0], spacing[1]),
        position_mm=position,
        orientation=orientation,
        slice_thickness_mm=thickness if thickness is not None and thickness > 0 else None,
        rescale=rescale,
        window=_window(groups, ds),
    )


def _first_item(source: Dataset | None, keyword: str) -> Dataset | None:
    """The first item of the sequence ``keyword``, or None when there is no usable item."""
    if source is None:
        return None
    items = tag_value(source, keyword)
    try:
        item = items[0] if items is not None else None
    except (TypeError, IndexError, KeyError):
        return None
    return item if isinstance(item, Dataset) else None


def _frame_value(ds: Dataset, groups: list[Dataset], macro: str, keyword: str) -> Any:
    """``keyword`` from the first functional group whose ``macro`` item has it, else top level."""
    for group in groups:
        item = _first_item(group, macro)
        if item is not None:
            value = tag_value(item, keyword)
            if value is not None:
                return value
    return tag_value(ds, keyword)


def _orientation(value: Any) -> tuple[float, ...] | None:
    if value is None:
        return None
    cosines = to_floats(value, "ImageOrientationPatient", 6, INVALID_GEOMETRY)
    row, column = np.asarray(cosines[:3]), np.asarray(cosines[3:])
    unit = abs(np.linalg.norm(row) - 1) < 0.01 and abs(np.linalg.norm(column) - 1) < 0.01
    if not unit or abs(float(np.dot(row, column))) > 0.01:
        raise DicomError(
            "The DICOM tag ImageOrientationPatient (0020,0037) must hold two orthogonal unit vectors.",
            INVALID_GEOMETRY,
        )
    return cosines


def _window(groups: list[Dataset], ds: Dataset) -> tuple[float, float] | None:
    """(center, width) from a Frame VOI LUT group or the top level; None when unusable."""
    sources = [item for g in groups if (item := _first_item(g, "FrameVOILUTSequence")) is not None] + [ds]
    for source in sources:
        center, width = optional_float(source, "WindowCenter"), optional_float(source, "WindowWidth")
        if center is not None and width is not None:
            return (center, width) if width > 0 else None
    return None


def _missing_frame_tag(keyword: str, macro: str) -> DicomError:
    return DicomError(
        f"The CT image has no {tag_name(keyword)} tag (neither at top level nor in a {macro} "
        "functional group), which is needed to read it.",
        MISSING_TAG,
    )
