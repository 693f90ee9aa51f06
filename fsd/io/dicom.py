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
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import math
import struct
import zlib
from dataclasses import dataclass, replace
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom import uid as dicom_uid
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.filereader import read_dataset, read_preamble
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, get_decoder
from pydicom.sequence import Sequence as DicomSequence

from fsd.io.dicom_errors import (
    FILE_UNREADABLE,
    INVALID_GEOMETRY,
    INVALID_PIXEL_DATA,
    INVALID_TAG,
    MISSING_TAG,
    NO_PIXELS,
    NOT_CT,
    NOT_DICOM,
    TOO_LARGE,
    TRUNCATED,
    UNSUPPORTED_TRANSFER_SYNTAX,
    DicomError,
)
from fsd.io.series import CTSlice, group_series

__all__ = [
    "DEFAULT_MAX_PIXEL_BYTES",
    "MAX_FRAMES",
    "CTSlice",
    "DicomError",
    "group_series",
    "hash_uid",
    "read_ct",
    "read_ct_file",
    "supported_transfer_syntaxes",
]

logger = logging.getLogger(__name__)

#: Default pixel budget of ``read_ct``: stored pixel bytes of all frames together.
DEFAULT_MAX_PIXEL_BYTES = 256 * 2**20
#: Most frames one file may hold (each becomes a CTSlice), whatever their size.
MAX_FRAMES = 20_000
#: Room for non-pixel content (headers, private tags) on top of the pixel budget.
NON_PIXEL_ALLOWANCE = 64 * 2**20

CT_SOP_CLASSES: frozenset[str] = frozenset(
    {
        dicom_uid.CTImageStorage,
        dicom_uid.EnhancedCTImageStorage,
        dicom_uid.LegacyConvertedEnhancedCTImageStorage,
    }
)
NATIVE_TRANSFER_SYNTAXES: frozenset[str] = frozenset(
    {
        dicom_uid.ImplicitVRLittleEndian,
        dicom_uid.ExplicitVRLittleEndian,
        dicom_uid.DeflatedExplicitVRLittleEndian,
        dicom_uid.ExplicitVRBigEndian,
    }
)
_JPEG_SYNTAXES = frozenset(
    {
        dicom_uid.JPEGBaseline8Bit,
        dicom_uid.JPEGExtended12Bit,
        dicom_uid.JPEGLossless,
        dicom_uid.JPEGLosslessSV1,
    }
)
_J2K_SYNTAXES = frozenset(
    {
        dicom_uid.JPEG2000Lossless,
        dicom_uid.JPEG2000,
        dicom_uid.HTJ2KLossless,
        dicom_uid.HTJ2KLosslessRPCL,
        dicom_uid.HTJ2K,
    }
)
# pydicom decoding plugins we allow per compressed syntax, in order of preference. All are
# license-clean: pydicom's RLE (MIT), python-gdcm (BSD), Pillow (HPND), and "pylibjpeg" only
# for JPEG 2000 / HTJ2K, which pylibjpeg serves from pylibjpeg-openjpeg (MIT); it is never
# named for JPEG, where it would dispatch to the GPL pylibjpeg-libjpeg. JPEG-LS is not listed.
_DECODING_PLUGINS: dict[str, tuple[str, ...]] = {
    dicom_uid.RLELossless: ("pydicom",),
    dicom_uid.JPEGBaseline8Bit: ("gdcm", "pillow"),
    dicom_uid.JPEGExtended12Bit: ("gdcm", "pillow"),
    dicom_uid.JPEGLossless: ("gdcm",),
    dicom_uid.JPEGLosslessSV1: ("gdcm",),
    dicom_uid.JPEG2000Lossless: ("pylibjpeg", "gdcm"),
    dicom_uid.JPEG2000: ("pylibjpeg", "gdcm"),
    dicom_uid.HTJ2KLossless: ("pylibjpeg",),
    dicom_uid.HTJ2KLosslessRPCL: ("pylibjpeg",),
    dicom_uid.HTJ2K: ("pylibjpeg",),
}
_PLUGIN_MODULES: dict[str, tuple[str, ...]] = {
    "pydicom": (),
    "gdcm": ("gdcm",),
    "pillow": ("PIL",),
    "pylibjpeg": ("pylibjpeg", "openjpeg"),
}
_INFLATE_CHUNK = 2**20
_PIXEL_DATA_TAG_BYTES = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")  # (7FE0,0010) LE and BE
_JPEG_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def hash_uid(uid: str) -> str:
    """A short, stable, non-reversible stand-in for a UID in logs (first 12 hex of sha256)."""
    return hashlib.sha256(uid.encode("utf-8", errors="replace")).hexdigest()[:12]


@cache
def _usable_plugins(transfer_syntax: str) -> tuple[str, ...]:
    """Allowed decoding plugins for a compressed syntax that pydicom has and can import."""
    wanted = _DECODING_PLUGINS.get(transfer_syntax, ())
    if not wanted:
        return ()
    try:
        available = get_decoder(transfer_syntax).available_plugins
    except Exception:  # pydicom has no decoder for this UID at all
        return ()
    return tuple(
        name
        for name in wanted
        if name in available and all(importlib.util.find_spec(m) is not None for m in _PLUGIN_MODULES[name])
    )


def supported_transfer_syntaxes() -> frozenset[str]:
    """Transfer syntax UIDs ``read_ct`` can decode with the decoders installed here."""
    compressed = {syntax for syntax in _DECODING_PLUGINS if _usable_plugins(syntax)}
    return NATIVE_TRANSFER_SYNTAXES | compressed


# ----------------------------------------------------------------------------- tag values


def _tag_name(keyword: str) -> str:
    tag = tag_for_keyword(keyword)
    return keyword if tag is None else f"{keyword} ({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _value(source: Dataset, keyword: str) -> Any:
    """The value of ``keyword``; None when absent or empty; ``invalid_tag`` when unreadable."""
    try:
        if keyword not in source:
            return None
        value = source[keyword].value
    except Exception as error:
        raise DicomError(
            f"The DICOM tag {_tag_name(keyword)} has a value that cannot be read.", INVALID_TAG
        ) from error
    if value is None or (hasattr(value, "__len__") and len(value) == 0):
        return None
    return value


def _required(source: Dataset, keyword: str) -> Any:
    value = _value(source, keyword)
    if value is None:
        raise DicomError(
            f"The CT image has no {_tag_name(keyword)} tag, which is needed to read it.", MISSING_TAG
        )
    return value


def _to_int(value: Any, keyword: str) -> int:
    try:
        if isinstance(value, (bytes, bytearray, MultiValue, list, tuple)):
            raise TypeError("not a single number")
        number = float(value)
        if not number.is_integer():
            raise ValueError("not a whole number")
        return int(number)
    except (TypeError, ValueError, OverflowError) as error:
        raise DicomError(
            f"The DICOM tag {_tag_name(keyword)} must be a whole number.", INVALID_TAG
        ) from error


def _to_floats(value: Any, keyword: str, count: int, code: str) -> tuple[float, ...]:
    """Exactly ``count`` finite numbers, else a DicomError with ``code`` naming the tag."""
    items = list(value) if isinstance(value, (MultiValue, list, tuple)) else [value]
    try:
        numbers = tuple(float(item) for item in items)
    except (TypeError, ValueError, OverflowError):
        numbers = ()
    if len(numbers) != count or not all(math.isfinite(number) for number in numbers):
        plural = "number" if count == 1 else f"{count} numbers"
        raise DicomError(f"The DICOM tag {_tag_name(keyword)} must hold {plural} (finite values).", code)
    return numbers


def _optional_float(source: Dataset, keyword: str) -> float | None:
    """A single finite number, or None when absent or unreadable (descriptive tags only)."""
    try:
        value = _value(source, keyword)
        if isinstance(value, (MultiValue, list, tuple)):
            value = value[0]
        return None if value is None else _to_floats(value, keyword, 1, INVALID_TAG)[0]
    except (DicomError, IndexError):
        return None


def _optional_int(source: Dataset, keyword: str) -> int | None:
    try:
        value = _value(source, keyword)
        return None if value is None else _to_int(value, keyword)
    except DicomError:
        return None


def _optional_str(source: Dataset, keyword: str) -> str | None:
    try:
        value = _value(source, keyword)
    except DicomError:
        return None
    return None if value is None else str(value).strip() or None


# ----------------------------------------------------------------------------- parsing


def _not_group_2(tag: int, vr: str | None, length: int) -> bool:
    return tag >> 16 != 2


def _meta_transfer_syntax(data: bytes) -> tuple[str | None, int]:
    """Transfer syntax in the File Meta group and the offset where the data set starts."""
    for implicit in (False, True):  # pydicom retries File Meta as implicit VR too
        stream = BytesIO(data)
        try:
            read_preamble(stream, True)
            meta = read_dataset(
                stream, is_implicit_VR=implicit, is_little_endian=True, stop_when=_not_group_2
            )
            syntax = meta.get("TransferSyntaxUID")
            return (None if syntax is None else str(syntax)), stream.tell()
        except Exception:
            continue
    return None, 0


def _check_inflated_size(data: bytes, limit: int) -> None:
    """Refuse a Deflated file that would inflate past ``limit`` (pydicom inflates without bound)."""
    syntax, offset = _meta_transfer_syntax(data)
    if syntax != dicom_uid.DeflatedExplicitVRLittleEndian:
        return
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    pending: bytes | memoryview = memoryview(data)[offset:]
    inflated_size = 0
    try:  # count the inflated bytes chunk by chunk, never holding more than one chunk
        while not inflater.eof:
            chunk = inflater.decompress(pending, _INFLATE_CHUNK)
            inflated_size += len(chunk)
            if inflated_size > limit:
                raise DicomError(
                    f"The Deflated DICOM file inflates to more than {_size_text(limit)}, "
                    "over this reader's limit.",
                    TOO_LARGE,
                )
            pending = inflater.unconsumed_tail
            if not pending and len(chunk) < _INFLATE_CHUNK:
                break
    except zlib.error:
        return  # a corrupt stream: dcmread fails on it, which is reported as not_dicom


def _looks_like_dicom(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    if meta is not None and (0x00020002 in meta or 0x00020010 in meta):
        return True
    return any(tag in ds for tag in (0x00080016, 0x00080018, 0x00080060, 0x00280010, 0x7FE00010))


def _parse(data: bytes, max_pixel_bytes: int) -> tuple[Dataset, bool]:
    """The parsed data set, and whether the file ended inside an element after its header."""
    if len(data) == 0:
        raise DicomError("The input is empty; a DICOM file was expected.", NOT_DICOM)
    limit = max_pixel_bytes + NON_PIXEL_ALLOWANCE
    if len(data) > limit:
        raise DicomError(
            f"The file is {_size_text(len(data))}, over this reader's limit of {_size_text(limit)}.",
            TOO_LARGE,
        )
    _check_inflated_size(data, limit)
    ds = _dcmread(data, stop_before_pixels=False)
    ends_early = False
    if "PixelData" not in ds:
        # When the file ends inside an element (e.g. in encapsulated Pixel Data) pydicom drops every
        # element it had read; the header up to the pixels still tells what the file is.
        header = _dcmread(data, stop_before_pixels=True)
        if len(header) > len(ds):
            ds, ends_early = header, True
    if not _looks_like_dicom(ds):
        raise DicomError("The file does not contain DICOM data.", NOT_DICOM)
    return ds, ends_early


def _dcmread(data: bytes, *, stop_before_pixels: bool) -> Dataset:
    try:
        return dcmread(BytesIO(data), force=True, stop_before_pixels=stop_before_pixels)
    except Exception as error:
        logger.debug("pydicom could not parse the input (%s)", type(error).__name__)
        raise DicomError("The file could not be parsed as DICOM.", NOT_DICOM) from error


def _check_is_ct(ds: Dataset) -> None:
    sop_class = _optional_str(ds, "SOPClassUID")
    if sop_class is None and getattr(ds, "file_meta", None) is not None:
        sop_class = _optional_str(ds.file_meta, "MediaStorageSOPClassUID")
    modality = _optional_str(ds, "Modality")
    if sop_class in CT_SOP_CLASSES and modality in (None, "CT"):
        return
    if sop_class is None and modality in (None, "CT"):
        raise DicomError(
            "The DICOM file has no SOPClassUID (0008,0016), so it cannot be recognised as a CT image.",
            MISSING_TAG,
        )
    kind = "an unknown SOP class" if sop_class is None else f"SOP class {dicom_uid.UID(sop_class).name}"
    modality_text = "" if modality is None else f" (modality {modality})"
    raise DicomError(f"The DICOM file is not a CT image: it has {kind}{modality_text}.", NOT_CT)


def _size_text(size: int) -> str:
    """A byte count for people: ``512 bytes``, ``32.0 KiB``, ``1.5 MiB``, ``2.0 GiB``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


# ----------------------------------------------------------------------------- pixel layout


@dataclass(frozen=True)
class _PixelLayout:
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
        bytes_per_sample = max(1, math.ceil(self.bits_allocated / 8))
        return self.rows * self.columns * self.frames * self.samples * bytes_per_sample


def _positive_int(ds: Dataset, keyword: str) -> int:
    number = _to_int(_required(ds, keyword), keyword)
    if number < 1:
        raise DicomError(f"The DICOM tag {_tag_name(keyword)} must be at least 1, got {number}.", INVALID_TAG)
    return number


def _pixel_element_state(ds: Dataset, data: bytes, ends_early: bool) -> bool:
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
    meta = getattr(ds, "file_meta", None)
    syntax = None if meta is None else _optional_str(meta, "TransferSyntaxUID")
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


def _read_layout(ds: Dataset, data: bytes, ends_early: bool, max_pixel_bytes: int) -> _PixelLayout:
    """Checks 3 to 7 of the module docstring; returns the validated pixel layout."""
    for keyword in ("SOPInstanceUID", "SeriesInstanceUID"):
        _required(ds, keyword)
    rows = _positive_int(ds, "Rows")
    columns = _positive_int(ds, "Columns")
    bits_allocated = _positive_int(ds, "BitsAllocated")
    bits_stored = _positive_int(ds, "BitsStored")
    samples = _positive_int(ds, "SamplesPerPixel")
    photometric = str(_required(ds, "PhotometricInterpretation")).strip().upper()
    pixel_representation = _to_int(_required(ds, "PixelRepresentation"), "PixelRepresentation")
    frames_value = _value(ds, "NumberOfFrames")  # absent (single frame) or 0 count as 1, as in pydicom
    frames = 1 if frames_value is None else max(1, _to_int(frames_value, "NumberOfFrames"))
    encapsulated = _pixel_element_state(ds, data, ends_early)

    layout = _PixelLayout(
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
            f"({_size_text(layout.declared_bytes)}), over the pixel limit of {_size_text(max_pixel_bytes)}.",
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


def _check_pixel_format(layout: _PixelLayout) -> None:
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


# ----------------------------------------------------------------------------- pixel length


def _codestream_size(syntax: str, frame: bytes) -> tuple[int, int] | None:
    """(rows, columns) a JPEG or JPEG 2000 frame declares in its own header; None if unparseable."""
    try:
        if syntax in _J2K_SYNTAXES:
            start = frame.find(b"\xff\x4f\xff\x51", 0, 4096)  # SOC directly followed by SIZ
            if start < 0:
                return None
            _, _, width, height, x_offset, y_offset = struct.unpack_from(">HHIIII", frame, start + 4)
            return height - y_offset, width - x_offset
        if frame[:2] != b"\xff\xd8":
            return None
        offset = 2
        while offset + 4 <= len(frame):
            if frame[offset] != 0xFF:
                return None
            marker = frame[offset + 1]
            if marker == 0xFF:  # fill byte
                offset += 1
            elif marker in _JPEG_SOF_MARKERS:
                height, width = struct.unpack_from(">HH", frame, offset + 5)
                return height, width
            elif marker in (0xD9, 0xDA):  # EOI or SOS before any SOF
                return None
            else:
                offset += 2 + struct.unpack_from(">H", frame, offset + 2)[0]
    except struct.error:
        return None
    return None


def _check_pixel_length(ds: Dataset, layout: _PixelLayout) -> None:
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
    if layout.transfer_syntax not in _JPEG_SYNTAXES | _J2K_SYNTAXES:
        return
    for number, frame in enumerate(frames[: layout.frames], start=1):
        size = _codestream_size(layout.transfer_syntax, frame)
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


# ----------------------------------------------------------------------------- per-frame metadata


@dataclass(frozen=True)
class _FrameInfo:
    spacing_mm: tuple[float, float]
    position_mm: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    slice_thickness_mm: float | None
    rescale: Dataset
    window: tuple[float, float] | None


def _first_item(source: Dataset | None, keyword: str) -> Dataset | None:
    if source is None:
        return None
    items = _value(source, keyword)
    try:
        item = items[0] if items is not None else None
    except (TypeError, IndexError, KeyError):
        return None
    return item if isinstance(item, Dataset) else None


def _frame_sources(ds: Dataset, groups: list[Dataset], macro: str, keyword: str) -> Any:
    """``keyword`` from the first functional group whose ``macro`` item has it, else top level."""
    for group in groups:
        item = _first_item(group, macro)
        if item is not None:
            value = _value(item, keyword)
            if value is not None:
                return value
    return _value(ds, keyword)


def _orientation(value: Any) -> tuple[float, ...] | None:
    if value is None:
        return None
    cosines = _to_floats(value, "ImageOrientationPatient", 6, INVALID_GEOMETRY)
    row, column = np.asarray(cosines[:3]), np.asarray(cosines[3:])
    unit = abs(np.linalg.norm(row) - 1) < 0.01 and abs(np.linalg.norm(column) - 1) < 0.01
    if not unit or abs(float(np.dot(row, column))) > 0.01:
        raise DicomError(
            "The DICOM tag ImageOrientationPatient (0020,0037) must hold two orthogonal unit vectors.",
            INVALID_GEOMETRY,
        )
    return cosines


def _window(groups: list[Dataset], ds: Dataset) -> tuple[float, float] | None:
    sources = [item for g in groups if (item := _first_item(g, "FrameVOILUTSequence")) is not None] + [ds]
    for source in sources:
        center, width = _optional_float(source, "WindowCenter"), _optional_float(source, "WindowWidth")
        if center is not None and width is not None:
            return (center, width) if width > 0 else None
    return None


def _missing_frame_tag(keyword: str, macro: str) -> DicomError:
    return DicomError(
        f"The CT image has no {_tag_name(keyword)} tag (neither at top level nor in a {macro} "
        "functional group), which is needed to read it.",
        MISSING_TAG,
    )


def _frame_info(ds: Dataset, groups: list[Dataset], index: int) -> _FrameInfo:
    spacing_value = _frame_sources(ds, groups, "PixelMeasuresSequence", "PixelSpacing")
    if spacing_value is None:
        raise _missing_frame_tag("PixelSpacing", "Pixel Measures")
    spacing = _to_floats(spacing_value, "PixelSpacing", 2, INVALID_GEOMETRY)
    if min(spacing) <= 0:
        raise DicomError("The DICOM tag PixelSpacing (0028,0030) must be positive.", INVALID_GEOMETRY)

    # Functional groups give every frame its position; a top-level one describes the first frame.
    position_value = _frame_sources(
        ds if index == 0 else Dataset(), groups, "PlanePositionSequence", "ImagePositionPatient"
    )
    position = None
    if position_value is not None:
        x, y, z = _to_floats(position_value, "ImagePositionPatient", 3, INVALID_GEOMETRY)
        position = (x, y, z)
    orientation = _orientation(
        _frame_sources(ds, groups, "PlaneOrientationSequence", "ImageOrientationPatient")
    )

    rescale = Dataset()
    for keyword, tag in (("RescaleSlope", 0x00281053), ("RescaleIntercept", 0x00281052)):
        value = _frame_sources(ds, groups, "PixelValueTransformationSequence", keyword)
        if value is None:
            raise _missing_frame_tag(keyword, "Pixel Value Transformation")
        number = _to_floats(value, keyword, 1, INVALID_TAG)[0]
        if keyword == "RescaleSlope" and number == 0:
            raise DicomError("The DICOM tag RescaleSlope (0028,1053) must not be 0.", INVALID_TAG)
        rescale.add(DataElement(tag, "FD", number))

    try:  # descriptive only: an unreadable or impossible thickness is simply unknown
        thickness_value = _frame_sources(ds, groups, "PixelMeasuresSequence", "SliceThickness")
        thickness = (
            None
            if thickness_value is None
            else _to_floats(thickness_value, "SliceThickness", 1, INVALID_TAG)[0]
        )
    except DicomError:
        thickness = None
    return _FrameInfo(
        spacing_mm=(spacing[0], spacing[1]),
        position_mm=position,
        orientation=orientation,
        slice_thickness_mm=thickness if thickness is not None and thickness > 0 else None,
        rescale=rescale,
        window=_window(groups, ds),
    )


def _frame_infos(ds: Dataset, frames: int) -> list[_FrameInfo]:
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    per_frame = _value(ds, "PerFrameFunctionalGroupsSequence")
    per_frame_items = list(per_frame) if isinstance(per_frame, DicomSequence) else []
    infos = []
    for index in range(frames):
        groups = [per_frame_items[index]] if index < len(per_frame_items) else []
        groups = [group for group in [*groups, shared] if isinstance(group, Dataset)]
        infos.append(_frame_info(ds, groups, index))
    return infos


# ----------------------------------------------------------------------------- decoding


def _decode_hu(ds: Dataset, layout: _PixelLayout, infos: list[_FrameInfo]) -> list[np.ndarray]:
    """Decode every frame with the allowed plugins (in order) and convert it to float32 HU."""
    decoder = get_decoder(layout.transfer_syntax)
    plugins = _usable_plugins(layout.transfer_syntax) or ("",)
    ds.file_meta.TransferSyntaxUID = dicom_uid.UID(layout.transfer_syntax)  # needed by the decoder
    failures = []
    for plugin in plugins:
        options: dict[str, Any] = {"as_rgb": False}
        if plugin:
            options["decoding_plugin"] = plugin
        try:
            hu_frames = []
            for array, _ in decoder.iter_array(ds, **options):
                if array.shape != (layout.rows, layout.columns) or array.dtype.kind not in "iu":
                    raise ValueError(f"decoded frame has shape {array.shape} and dtype {array.dtype}")
                info = infos[len(hu_frames)]
                hu_frames.append(np.asarray(apply_modality_lut(array, info.rescale), dtype=np.float32))
                if len(hu_frames) == layout.frames:
                    break
        except Exception as error:
            failures.append(f"{plugin or 'pydicom'}: {type(error).__name__}")
            continue
        if len(hu_frames) == layout.frames:
            return hu_frames
        failures.append(f"{plugin or 'pydicom'}: {len(hu_frames)} of {layout.frames} frames")
    logger.debug("pixel decoding failed (%s)", "; ".join(failures))
    raise DicomError(
        f"The pixel data could not be decoded as {dicom_uid.UID(layout.transfer_syntax).name}.",
        INVALID_PIXEL_DATA,
    )


# ----------------------------------------------------------------------------- public API


def read_ct(data: bytes, *, max_pixel_bytes: int = DEFAULT_MAX_PIXEL_BYTES) -> list[CTSlice]:
    """Read one DICOM file held in memory as CT slices (one per frame), in HU.

    ``max_pixel_bytes`` bounds the stored pixel bytes of all frames (Rows x Columns x frames x
    SamplesPerPixel x BitsAllocated/8), checked before anything is decoded. Raises
    ``DicomError`` (see the module docstring for the codes and their order) and nothing else.
    """
    if max_pixel_bytes < 1:
        raise ValueError(f"max_pixel_bytes must be positive, got {max_pixel_bytes}")
    code_if_unexpected = NOT_DICOM
    try:
        data = bytes(data)
        ds, ends_early = _parse(data, max_pixel_bytes)
        _check_is_ct(ds)
        code_if_unexpected = INVALID_TAG
        layout = _read_layout(ds, data, ends_early, max_pixel_bytes)
        _check_pixel_length(ds, layout)
        infos = _frame_infos(ds, layout.frames)
        code_if_unexpected = INVALID_PIXEL_DATA
        hu_frames = _decode_hu(ds, layout, infos)
        slices = _build_slices(ds, layout, infos, hu_frames)
    except DicomError as error:
        logger.debug("DICOM input rejected: %s", error.code)
        raise
    except Exception as error:  # a parser or plugin failure we did not foresee: still a clean error
        logger.debug("DICOM input rejected after %s", type(error).__name__)
        raise DicomError("The DICOM file could not be read as a CT image.", code_if_unexpected) from error
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


def _build_slices(
    ds: Dataset, layout: _PixelLayout, infos: list[_FrameInfo], hu_frames: list[np.ndarray]
) -> list[CTSlice]:
    sop_instance_uid = str(_required(ds, "SOPInstanceUID")).strip()
    series_instance_uid = str(_required(ds, "SeriesInstanceUID")).strip()
    study_instance_uid = _optional_str(ds, "StudyInstanceUID")
    slice_location = _optional_float(ds, "SliceLocation")
    instance_number = _optional_int(ds, "InstanceNumber")
    return [
        CTSlice(
            hu=hu,
            spacing_mm=info.spacing_mm,
            position_mm=info.position_mm,
            orientation=info.orientation,
            slice_location=slice_location,
            sop_instance_uid=sop_instance_uid,
            series_instance_uid=series_instance_uid,
            study_instance_uid=study_instance_uid,
            frame=index + 1,
            number_of_frames=layout.frames,
            instance_number=instance_number,
            slice_thickness_mm=info.slice_thickness_mm,
            window=info.window,
        )
        for index, (info, hu) in enumerate(zip(infos, hu_frames, strict=True))
    ]


def read_ct_file(path: str | Path, *, max_pixel_bytes: int = DEFAULT_MAX_PIXEL_BYTES) -> list[CTSlice]:
    """``read_ct`` on the bytes of a file; an unreadable or oversized file is a ``DicomError`` too."""
    path = Path(path)
    limit = max_pixel_bytes + NON_PIXEL_ALLOWANCE
    try:
        size = path.stat().st_size
        if size > limit:
            raise DicomError(
                f"{path} is {_size_text(size)}, over this reader's limit of {_size_text(limit)}.", TOO_LARGE
            )
        data = path.read_bytes()
    except OSError as error:
        raise DicomError(f"{path} cannot be read ({error.strerror or error}).", FILE_UNREADABLE) from error
    return read_ct(data, max_pixel_bytes=max_pixel_bytes)
