"""Read single DICOM tag values and convert them, with error messages that name the tag.

Each reader asks pydicom for one keyword, so only the technical tags the CT reader needs are
ever converted (pydicom parses values lazily; patient tags are never touched). The required
readers raise ``DicomError`` (``missing_tag``, ``invalid_tag`` or the code the caller passes);
the ``optional_*`` readers are for descriptive tags and return None for an absent or unreadable
value. ``readable_size`` writes byte counts for the reader's messages.
"""

from __future__ import annotations

import math
from typing import Any

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from fsd.io.dicom.errors import INVALID_TAG, MISSING_TAG, DicomError


def tag_name(keyword: str) -> str:
    """``keyword`` with its tag number for messages, e.g. ``Rows (0028,0010)``."""
    tag = tag_for_keyword(keyword)
    return keyword if tag is None else f"{keyword} ({tag >> 16:04X},{tag & 0xFFFF:04X})"


def tag_value(source: Dataset, keyword: str) -> Any:
    """The value of ``keyword``; None when absent or empty; ``invalid_tag`` when unreadable."""
    try:
        if keyword not in source:
            return None
        value = source[keyword].value
    except Exception as error:
        raise DicomError(
            f"The DICOM tag {tag_name(keyword)} has a value that cannot be read.", INVALID_TAG
        ) from error
    if value is None or (hasattr(value, "__len__") and len(value) == 0):
        return None
    return value


def required_value(source: Dataset, keyword: str) -> Any:
    """The value of ``keyword``; ``missing_tag`` when absent or empty."""
    value = tag_value(source, keyword)
    if value is None:
        raise DicomError(
            f"The CT image has no {tag_name(keyword)} tag, which is needed to read it.", MISSING_TAG
        )
    return value


def to_int(value: Any, keyword: str) -> int:
    """A single whole number, else ``invalid_tag`` naming ``keyword``."""
    try:
        if isinstance(value, (bytes, bytearray, MultiValue, list, tuple)):
            raise TypeError("not a single number")
        number = float(value)
        if not number.is_integer():
            raise ValueError("not a whole number")
        return int(number)
    except (TypeError, ValueError, OverflowError) as error:
        raise DicomError(f"The DICOM tag {tag_name(keyword)} must be a whole number.", INVALID_TAG) from error


def to_floats(value: Any, keyword: str, count: int, code: str) -> tuple[float, ...]:
    """Exactly ``count`` finite numbers, else a DicomError with ``code`` naming the tag."""
    items = list(value) if isinstance(value, (MultiValue, list, tuple)) else [value]
    try:
        numbers = tuple(float(item) for item in items)
    except (TypeError, ValueError, OverflowError):
        numbers = ()
    if len(numbers) != count or not all(math.isfinite(number) for number in numbers):
        plural = "number" if count == 1 else f"{count} numbers"
        raise DicomError(f"The DICOM tag {tag_name(keyword)} must hold {plural} (finite values).", code)
    return numbers


def positive_int(source: Dataset, keyword: str) -> int:
    """A required whole number of at least 1, else ``missing_tag`` / ``invalid_tag``."""
    number = to_int(required_value(source, keyword), keyword)
    if number < 1:
        raise DicomError(f"The DICOM tag {tag_name(keyword)} must be at least 1, got {number}.", INVALID_TAG)
    return number


def optional_float(source: Dataset, keyword: str) -> float | None:
    """A single finite number, or None when absent or unreadable (descriptive tags only)."""
    try:
        value = tag_value(source, keyword)
        if isinstance(value, (MultiValue, list, tuple)):
            value = value[0]
        return None if value is None else to_floats(value, keyword, 1, INVALID_TAG)[0]
    except (DicomError, IndexError):
        return None


def optional_int(source: Dataset, keyword: str) -> int | None:
    """A single whole number, or None when absent or unreadable (descriptive tags only)."""
    try:
        value = tag_value(source, keyword)
        return None if value is None else to_int(value, keyword)
    except DicomError:
        return None


def optional_str(source: Dataset, keyword: str) -> str | None:
    """The stripped text of ``keyword``, or None when absent, blank or unreadable."""
    try:
        value = tag_value(source, keyword)
    except DicomError:
        return None
    return None if value is None else str(value).strip() or None


def readable_size(size: int) -> str:
    """A byte count for people: ``512 bytes``, ``32.0 KiB``, ``1.5 MiB``, ``2.0 GiB``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"
