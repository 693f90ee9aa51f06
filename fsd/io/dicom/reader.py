"""Read CT images from DICOM bytes: validate everything first, then decode within a memory budget.

``read_ct(data)`` returns one ``CTSlice`` per frame in Hounsfield units, or raises ``DicomError``;
no other exception leaves it, whatever the bytes. It reads from memory only and never writes.

Checks run in this order and the first failure wins, so a given input always gets the same code:

1. ``not_dicom``: empty input, bytes pydicom cannot parse, or nothing DICOM-like in them
   (``dcmread(force=True)`` accepts random bytes, so File Meta or key tags must be present).
2. ``not_ct``: SOP class other than CT / Enhanced CT / Legacy Converted Enhanced CT Image
   Storage, or a Modality other than CT. This comes before the pixel check, so an RT plan or a
   structured report is ``not_ct`` rather than ``no_pixels``.
3. ``missing_tag`` / ``invalid_tag``: UIDs and the Image Pixel description (Rows, Columns, ...).
4. ``no_pixels``: no integer Pixel Data. ``truncated`` instead when the file ends inside an
   element after its header (pydicom then drops the whole data set, so the header is re-read up
   to the pixels to classify the file first) or the Pixel Data tag is there without its value.
5. ``too_large``: Rows x Columns x frames x SamplesPerPixel x bytes per sample over the budget,
   and Deflated files whose inflated size would be; nothing is decoded before this.
6. ``unsupported_transfer_syntax``: decided from the UID and the importable license-clean
   decoders (``supported_transfer_syntaxes``), not by trying.
7. ``invalid_pixel_data``: a layout a CT image cannot have (colour, SamplesPerPixel != 1,
   BitsAllocated not 8/16/32, native/encapsulated mismatch).
8. ``truncated``: native pixel data shorter than declared, or fewer compressed frames than
   declared; ``invalid_pixel_data`` when a compressed frame's own header declares another size
   (so a decoder is never asked to allocate more than the budget).
9. ``missing_tag`` / ``invalid_geometry`` / ``invalid_tag`` per frame: PixelSpacing, position,
   orientation and rescale, from the per-frame then shared functional groups, then top level.
10. Decoding: any decoder failure is ``invalid_pixel_data``.

HU are the modality LUT output (``pydicom.pixels.apply_modality_lut`` with the frame's
RescaleSlope/RescaleIntercept; both are required for CT). MONOCHROME1: DICOM PS3.3 C.7.6.3.1.2
defines it as "the minimum sample value is intended to be displayed as white *after* any VOI
gray scale transformations", i.e. a presentation step that follows the modality LUT. The
modality LUT output of a conforming MONOCHROME1 CT is therefore already HU in which denser
tissue is higher, and we do not flip stored values (flipping before the rescale would turn the
air of a conforming file into metal). MONOCHROME1 and MONOCHROME2 twins give identical HU.

PHI: only technical tags are ever accessed (pydicom converts values lazily, so patient tags are
never parsed or validated), messages name tags and sizes only, and UIDs are logged as
``hash_uid`` digests.

Modules, one job each: :mod:`.parsing` (1, 2), :mod:`.pixels` (3 to 8), :mod:`.codecs` (which
syntaxes and plugins, for 6 and 8), :mod:`.frame_metadata` (9) and :mod:`.decoding` (10), on
the tag readers of :mod:`.values`; :mod:`.series` holds the slice type and series grouping. This
module runs them in order and builds the slices.

A reader that checks a file when it arrives and decodes it later (the service) parses it once:
``open_dicom`` (check 1), ``check_file`` (checks 2 to 9) and ``decode_ct`` (check 10) are the
three steps of ``read_ct``, and the ``ParsedCT`` between them keeps the parsed data set.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import uid as dicom_uid
from pydicom.dataset import Dataset

from fsd.io.dicom.decoding import decode_hu
from fsd.io.dicom.errors import (
    FILE_UNREADABLE,
    INVALID_PIXEL_DATA,
    INVALID_TAG,
    NOT_DICOM,
    TOO_LARGE,
    DicomError,
)
from fsd.io.dicom.frame_metadata import FrameMetadata, read_frame_metadata
from fsd.io.dicom.parsing import check_is_ct, parse_dicom
from fsd.io.dicom.pixels import PixelLayout, check_pixel_length, read_pixel_layout
from fsd.io.dicom.series import CTSlice
from fsd.io.dicom.values import optional_float, optional_int, optional_str, readable_size, required_value

logger = logging.getLogger(__name__)

#: Default pixel budget of ``read_ct``: stored pixel bytes of all frames together.
DEFAULT_MAX_PIXEL_BYTES = 256 * 2**20
#: Room for non-pixel content (headers, private tags) on top of the pixel budget.
NON_PIXEL_ALLOWANCE = 64 * 2**20


def hash_uid(uid: str) -> str:
    """A short, stable, non-reversible stand-in for a UID in logs (first 12 hex of sha256)."""
    return hashlib.sha256(uid.encode("utf-8", errors="replace")).hexdigest()[:12]


@dataclass(frozen=True)
class DicomFile:
    """Bytes that passed check 1: the data set parsed from them (once), and whether the file ended
    inside an element after its header. :func:`check_file` runs checks 2 to 9 on it."""

    dataset: Dataset
    data: bytes
    ends_early: bool


@dataclass(frozen=True)
class ParsedCT:
    """A CT file that passed checks 1 to 9: its data set (parsed once), the validated pixel layout
    and each frame's metadata. :func:`decode_ct` decodes it (check 10); the data set also serves
    whoever needs the file's header afterwards, without parsing the bytes again."""

    dataset: Dataset
    layout: PixelLayout
    frames: list[FrameMetadata]


def read_ct(data: bytes, *, max_pixel_bytes: int = DEFAULT_MAX_PIXEL_BYTES) -> list[CTSlice]:
    """Read one DICOM file held in memory as CT slices (one per frame), in HU.

    ``max_pixel_bytes`` bounds the stored pixel bytes of all frames (Rows x Columns x frames x
    SamplesPerPixel x BitsAllocated/8), checked before anything is decoded. Raises
    ``DicomError`` (see the module docstring for the codes and their order) and nothing else.
    """
    return decode_ct(parse_ct(data, max_pixel_bytes=max_pixel_bytes))


def check_ct(data: bytes, *, max_pixel_bytes: int = DEFAULT_MAX_PIXEL_BYTES) -> None:
    """Checks 1 to 9 of ``read_ct`` without decoding the pixels (step 10): raises the ``DicomError``
    ``read_ct`` would raise before decoding, else returns. For a cheap triage of received files
    that are decoded later; only a decoder failure on a compressed frame can still fail then."""
    parse_ct(data, max_pixel_bytes=max_pixel_bytes)


def parse_ct(data: bytes, *, max_pixel_bytes: int = DEFAULT_MAX_PIXEL_BYTES) -> ParsedCT:
    """Checks 1 to 9 of ``read_ct``, parsing the bytes once; :func:`decode_ct` finishes the read."""
    return check_file(open_dicom(data, max_pixel_bytes=max_pixel_bytes), max_pixel_bytes=max_pixel_bytes)


def open_dicom(data: bytes, *, max_pixel_bytes: int = DEFAULT_MAX_PIXEL_BYTES) -> DicomFile:
    """Check 1: the bytes parsed as a DICOM data set (``not_dicom`` / ``too_large`` otherwise)."""
    if max_pixel_bytes < 1:
        raise ValueError(f"max_pixel_bytes must be positive, got {max_pixel_bytes}")
    with _rejections(NOT_DICOM):
        data = bytes(data)
        ds, ends_early = parse_dicom(data, _file_size_limit(max_pixel_bytes))
    return DicomFile(ds, data, ends_early)


def check_file(file: DicomFile, *, max_pixel_bytes: int = DEFAULT_MAX_PIXEL_BYTES) -> ParsedCT:
    """Checks 2 to 9 on a parsed file: a CT image whose pixels can be decoded within the budget."""
    with _rejections(NOT_DICOM):
        check_is_ct(file.dataset)
    with _rejections(INVALID_TAG):
        layout = read_pixel_layout(file.dataset, file.data, file.ends_early, max_pixel_bytes)
        check_pixel_length(file.dataset, layout)
        frames = read_frame_metadata(file.dataset, layout.frames)
    return ParsedCT(file.dataset, layout, frames)


def decode_ct(parsed: ParsedCT) -> list[CTSlice]:
    """Check 10: decode a checked file to CT slices in HU (``invalid_pixel_data`` when a decoder fails)."""
    ds, layout = parsed.dataset, parsed.layout
    with _rejections(INVALID_PIXEL_DATA):
        hu_frames = decode_hu(ds, layout, [frame.rescale for frame in parsed.frames])
        slices = _build_slices(ds, layout, parsed.frames, hu_frames)
    first = slices[0]
    logger.debug(
        "read CT instance %s (series %s): %d frame(s) of %d x %d, %s",
        hash_uid(first.sop_instance_uid),
        hash_uid(first.series_instance_uid),
        layout.frames,
        layout.rows,
        layout.columns,
        dicom_uid.UID(layout.transfer_syntax).name,
    )
    return slices


@contextmanager
def _rejections(code_if_unexpected: str) -> Iterator[None]:
    """Let DicomErrors through; turn anything else a parser or plugin raises into one with the given code."""
    try:
        yield
    except DicomError as error:
        logger.debug("DICOM input rejected: %s", error.code)
        raise
    except Exception as error:  # a parser or plugin failure we did not foresee: still a clean error
        logger.debug("DICOM input rejected after %s", type(error).__name__)
        raise DicomError("The DICOM file could not be read as a CT image.", code_if_unexpected) from error


def read_ct_file(path: str | Path, *, max_pixel_bytes: int = DEFAULT_MAX_PIXEL_BYTES) -> list[CTSlice]:
    """``read_ct`` on the bytes of a file; an unreadable or oversized file is a ``DicomError`` too."""
    path = Path(path)
    limit = _file_size_limit(max_pixel_bytes)
    try:
        size = path.stat().st_size
        if size > limit:
            raise DicomError(
                f"{path} is {readable_size(size)}, over this reader's limit of {readable_size(limit)}.",
                TOO_LARGE,
            )
        data = path.read_bytes()
    except OSError as error:
        raise DicomError(f"{path} cannot be read ({error.strerror or error}).", FILE_UNREADABLE) from error
    return read_ct(data, max_pixel_bytes=max_pixel_bytes)


def _file_size_limit(max_pixel_bytes: int) -> int:
    """Most bytes a file (or an inflated Deflated data set) may have for this pixel budget."""
    return max_pixel_bytes + NON_PIXEL_ALLOWANCE


def _build_slices(
    ds: Dataset, layout: PixelLayout, frames: list[FrameMetadata], hu_frames: list[np.ndarray]
) -> list[CTSlice]:
    sop_instance_uid = str(required_value(ds, "SOPInstanceUID")).strip()
    series_instance_uid = str(required_value(ds, "SeriesInstanceUID")).strip()
    study_instance_uid = optional_str(ds, "StudyInstanceUID")
    slice_location = optional_float(ds, "SliceLocation")
    instance_number = optional_int(ds, "InstanceNumber")
    return [
        CTSlice(
            hu=hu,
            spacing_mm=frame.spacing_mm,
            position_mm=frame.position_mm,
            orientation=frame.orientation,
            slice_location=slice_location,
            sop_instance_uid=sop_instance_uid,
            series_instance_uid=series_instance_uid,
            study_instance_uid=study_instance_uid,
            frame=index + 1,
            number_of_frames=layout.frames,
            instance_number=instance_number,
            slice_thickness_mm=frame.slice_thickness_mm,
            window=frame.window,
        )
        for index, (frame, hu) in enumerate(zip(frames, hu_frames, strict=True))
    ]
