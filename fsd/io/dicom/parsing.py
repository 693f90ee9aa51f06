"""Turn input bytes into a pydicom Dataset and decide that it is a CT image.

``parse_dicom`` refuses empty, oversized and non-DICOM input (``not_dicom`` / ``too_large``),
including Deflated files that would inflate past the size limit, and tells the caller when the
file ends inside an element after its header. ``check_is_ct`` accepts only the CT SOP classes
(``not_ct`` otherwise, ``missing_tag`` when nothing says what the object is).
"""

from __future__ import annotations

import logging
import zlib
from io import BytesIO

from pydicom import dcmread
from pydicom import uid as dicom_uid
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset, read_preamble

from fsd.io.dicom.errors import MISSING_TAG, NOT_CT, NOT_DICOM, TOO_LARGE, DicomError
from fsd.io.dicom.values import optional_str, readable_size

logger = logging.getLogger(__name__)

CT_SOP_CLASSES: frozenset[str] = frozenset(
    {
        dicom_uid.CTImageStorage,
        dicom_uid.EnhancedCTImageStorage,
        dicom_uid.LegacyConvertedEnhancedCTImageStorage,
    }
)
_INFLATE_CHUNK = 2**20


def parse_dicom(data: bytes, size_limit: int) -> tuple[Dataset, bool]:
    """The parsed data set, and whether the file ended inside an element after its header.

    ``size_limit`` bounds the file and, for a Deflated file, its inflated size.
    """
    if len(data) == 0:
        raise DicomError("The input is empty; a DICOM file was expected.", NOT_DICOM)
    if len(data) > size_limit:
        raise DicomError(
            f"The file is {readable_size(len(data))}, over this reader's limit of "
            f"{readable_size(size_limit)}.",
            TOO_LARGE,
        )
    _check_inflated_size(data, size_limit)
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


def check_is_ct(ds: Dataset) -> None:
    """Check 2: a CT SOP class and, when present, Modality CT."""
    sop_class = optional_str(ds, "SOPClassUID")
    if sop_class is None and getattr(ds, "file_meta", None) is not None:
        sop_class = optional_str(ds.file_meta, "MediaStorageSOPClassUID")
    modality = optional_str(ds, "Modality")
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


def _dcmread(data: bytes, *, stop_before_pixels: bool) -> Dataset:
    try:
        return dcmread(BytesIO(data), force=True, stop_before_pixels=stop_before_pixels)
    except Exception as error:
        logger.debug("pydicom could not parse the input (%s)", type(error).__name__)
        raise DicomError("The file could not be parsed as DICOM.", NOT_DICOM) from error


def _looks_like_dicom(ds: Dataset) -> bool:
    """File Meta or a key tag is present (``dcmread(force=True)`` accepts any bytes)."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None and (0x00020002 in meta or 0x00020010 in meta):
        return True
    return any(tag in ds for tag in (0x00080016, 0x00080018, 0x00080060, 0x00280010, 0x7FE00010))


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
                    f"The Deflated DICOM file inflates to more than {readable_size(limit)}, "
                    "over this reader's limit.",
                    TOO_LARGE,
                )
            pending = inflater.unconsumed_tail
            if not pending and len(chunk) < _INFLATE_CHUNK:
                break
    except zlib.error:
        return  # a corrupt stream: dcmread fails on it, which is reported as not_dicom
