"""Validate a CT image's pixel description before anything is decoded.

``read_pixel_layout`` reads the Image Pixel tags and applies, in order: required tags, that
integer Pixel Data is present, the frame count and pixel budget, the transfer syntax, and the
layout a CT image can have. ``check_pixel_length`` then makes sure the pixel data holds every
frame it declares, at the declared size, so a decoder never allocates past the budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from pydicom import uid as dicom_uid
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames

from fsd.io.dicom.codecs import (
    JPEG_2000_SYNTAXES,
    JPEG_SYNTAXES,
    NATIVE_TRANSFER_SYNTAXES,
    codestream_size,
    supported_transfer_syntaxes,
)
from fsd.io.dicom.errors import (
    INVALID_PIXEL_DATA,
    NO_PIXELS,
    TOO_LARGE,
    TRUNCATED,
    UNSUPPORTED_TRANSFER_SYNTAX,
    DicomError,
)
from fsd.io.dicom.values import (
    optional_str,
    positive_int,
    readable_size,
    required_value,
    tag_value,
    to_int,
)

#: Most frames one file may hold (each becomes a CTSlice), whatever their size.
MAX_FRAMES = 20_000

_PIXEL_DATA_TAG_BYTES = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")  # (7FE0,0010) LE and BE


@dataclass(frozen=True)
class PixelLayout:
    """The validated Image Pixel description of one file (all frames share it)."""

    rows: int
    columns: int
    frames: int
    samples: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric: str
    transfer_syntax: str
    encapsulated: bool

    @property
    def declared_bytes(self) -> int:
        """Stored pixel bytes of all frames as the header declares them."""
        bytes_per_sample = max(1, math.ceil(self.bits_allocated / 8))
        return self.rows * self.columns * self.frames * self.samples * bytes_per_sample


def read_pixel_layout(ds: Dataset, data: bytes, ends_early: bool, max_pixel_bytes: int) -> PixelLayout:
    """Checks 3 to 7 of the ``fsd.io.dicom`` docstring; returns the validated pixel layout."""
    for keyword in ("SOPInstanceUID", "SeriesInstanceUID"):
        required_value(ds, keyword)
    rows = positive_int(ds, "Rows")
    columns = positive_int(ds, "Columns")
    bits_allocated = positive_int(ds, "BitsAllocated")
    bits_stored = positive_int(ds, "BitsStored")
    samples = positive_int(ds, "SamplesPerPixel")
    photometric = str(required_value(ds, "PhotometricInterpretation")).strip().upper()
    pixel_representation = to_int(required_value(ds, "PixelRepresentation"), "PixelRepresentation")
    frames_value = tag_value(ds, "NumberOfFrames")  # absent (single frame) or 0 count as 1, as in pydicom
    frames = 1 if frames_value is None else max(1, to_int(frames_value, "NumberOfFrames"))
    encapsulated = _is_encapsulated(ds, data, ends_early)

    layout = PixelLayout(
        rows=rows,
        columns=columns,
        frames=frames,
        samples=samples,
        bits_allocated=bits_allocated,
        bits_stored=bits_stored,
        pixel_representation=pixel_representation,
        photometric=photometric,
        transfer_syntax="",  # known after the budget check
        encapsulated=encapsulated,
    )
    if frames > MAX_FRAMES:
        raise DicomError(
            f"The image declares {frames} frames; this reader accepts at most {MAX_FRAMES}.", TOO_LARGE
        )
    if layout.declared_bytes > max_pixel_bytes:
        raise DicomError(
            f"The image is {rows} x {columns} pixels x {frames} frame(s) at {bits_allocated} bits "
            f"({readable_size(layout.declared_bytes)}), over the pixel limit of "
            f"{readable_size(max_pixel_bytes)}.",
            TOO_LARGE,
        )
    syntax = _transfer_syntax(ds, encapsulated)
    if syntax not in supported_transfer_syntaxes():
        raise DicomError(
            f"The pixel data uses the transfer syntax {dicom_uid.UID(syntax).name}, which this reader "
            "cannot decode.",
            UNSUPPORTED_TRANSFER_SYNTAX,
        )
    layout = replace(layout, transfer_syntax=syntax)
    _check_pixel_format(layout)
    return layout


def check_pixel_length(ds: Dataset, layout: PixelLayout) -> None:
    """Check 8: enough native bytes, enough compressed frames of the declared size."""
    pixel_bytes = ds.PixelData
    if not layout.encapsulated:
        if len(pixel_bytes) < layout.declared_bytes:
            raise DicomError(
                f"The pixel data holds {len(pixel_bytes)} bytes but {layout.rows} x {layout.columns} "
                f"pixels x {layout.frames} frame(s) at {layout.bits_allocated} bits need "
                f"{layout.declared_bytes}: the file is truncated.",
                TRUNCATED,
            )
        return
    offsets = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        offsets = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    try:
        frames = list(generate_frames(pixel_bytes, number_of_frames=layout.frames, extended_offsets=offsets))
    except Exception as error:
        raise DicomError(
            "The compressed pixel data cannot be split into frames.", INVALID_PIXEL_DATA
        ) from error
    if len(frames) < layout.frames:
        raise DicomError(
            f"The compressed pixel data holds {len(frames)} frame(s) but the header declares "
            f"{layout.frames}: the file is truncated.",
            TRUNCATED,
        )
    if layout.transfer_syntax not in JPEG_SYNTAXES | JPEG_2000_SYNTAXES:
        return
    for number, frame in enumerate(frames[: layout.frames], start=1):
        size = codestream_size(layout.transfer_syntax, frame)
        if size is None:
            raise DicomError(
                f"Compressed frame {number} is not a valid codestream for its transfer syntax.",
                INVALID_PIXEL_DATA,
            )
        if size != (layout.rows, layout.columns):
            raise DicomError(
                f"Compressed frame {number} is {size[0]} x {size[1]} pixels but the header declares "
                f"{layout.rows} x {layout.columns}.",
                INVALID_PIXEL_DATA,
            )


def _is_encapsulated(ds: Dataset, data: bytes, ends_early: bool) -> bool:
    """Whether Pixel Data is encapsulated; ``no_pixels`` / ``truncated`` when it is absent."""
    if ends_early:
        raise DicomError("The file is truncated: it ends inside a data element after its header.", TRUNCATED)
    if "PixelData" not in ds:
        for keyword in ("FloatPixelData", "DoubleFloatPixelData"):
            if keyword in ds:
                raise DicomError(
                    f"The CT image stores {keyword}, which this reader does not support; "
                    "integer Pixel Data (7FE0,0010) is needed.",
                    NO_PIXELS,
                )
        if any(pattern in data for pattern in _PIXEL_DATA_TAG_BYTES):
            raise DicomError("The file ends inside its Pixel Data: it is truncated.", TRUNCATED)
        raise DicomError("The CT image has no Pixel Data (7FE0,0010).", NO_PIXELS)
    try:
        element = ds["PixelData"]
        return bool(element.is_undefined_length) or bytes(element.value[:4]) == b"\xfe\xff\x00\xe0"
    except Exception as error:
        raise DicomError("The Pixel Data element cannot be read.", INVALID_PIXEL_DATA) from error


def _transfer_syntax(ds: Dataset, encapsulated: bool) -> str:
    """The File Meta transfer syntax, else the one the data set was read with (native only)."""
    meta = getattr(ds, "file_meta", None)
    syntax = None if meta is None else optional_str(meta, "TransferSyntaxUID")
    if syntax is not None:
        return syntax
    if encapsulated:
        raise DicomError(
            "The pixel data is compressed but the file names no transfer syntax, so it cannot be decoded.",
            UNSUPPORTED_TRANSFER_SYNTAX,
        )
    implicit, little_endian = getattr(ds, "original_encoding", (True, True))
    if not little_endian:
        return str(dicom_uid.ExplicitVRBigEndian)
    return str(dicom_uid.ImplicitVRLittleEndian if implicit else dicom_uid.ExplicitVRLittleEndian)


def _check_pixel_format(layout: PixelLayout) -> None:
    """Check 7: a layout a CT image can have (monochrome, one sample, 8/16/32 bits, ...)."""
    native = layout.transfer_syntax in NATIVE_TRANSFER_SYNTAXES
    problem = None
    if layout.photometric not in ("MONOCHROME1", "MONOCHROME2"):
        problem = (
            f"its photometric interpretation is {layout.photometric}; CT needs MONOCHROME1 or MONOCHROME2"
        )
    elif layout.samples != 1:
        problem = f"it has {layout.samples} samples per pixel; CT needs 1"
    elif layout.bits_allocated not in (8, 16, 32):
        problem = f"BitsAllocated is {layout.bits_allocated}; this reader supports 8, 16 or 32"
    elif layout.bits_stored > layout.bits_allocated:
        problem = f"BitsStored ({layout.bits_stored}) exceeds BitsAllocated ({layout.bits_allocated})"
    elif layout.pixel_representation not in (0, 1):
        problem = f"PixelRepresentation is {layout.pixel_representation}; it must be 0 or 1"
    elif native and layout.encapsulated:
        problem = "its pixel data is compressed (encapsulated) although the transfer syntax is uncompressed"
    elif not native and not layout.encapsulated:
        problem = "its pixel data is not encapsulated although the transfer syntax is compressed"
    if problem is not None:
        raise DicomError(f"The CT pixel data cannot be used: {problem}.", INVALID_PIXEL_DATA)
