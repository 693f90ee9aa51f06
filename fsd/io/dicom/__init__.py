"""Validated DICOM reading for CT: ``read_ct`` turns the bytes of one file into CT slices in
Hounsfield units (or a ``DicomError`` with a stable code), ``check_ct`` runs the same checks
without decoding (``open_dicom``, ``check_file`` and ``decode_ct`` are the three steps of
``read_ct``, for a reader that checks on arrival and decodes later without parsing twice), and
``group_series`` orders slices into series along the scan axis. :mod:`.reader` documents the checks and their order.
"""

from fsd.io.dicom.codecs import NATIVE_TRANSFER_SYNTAXES, supported_transfer_syntaxes
from fsd.io.dicom.errors import DicomError
from fsd.io.dicom.parsing import CT_SOP_CLASSES
from fsd.io.dicom.pixels import MAX_FRAMES
from fsd.io.dicom.reader import (
    DEFAULT_MAX_PIXEL_BYTES,
    NON_PIXEL_ALLOWANCE,
    DicomFile,
    ParsedCT,
    check_ct,
    check_file,
    decode_ct,
    hash_uid,
    open_dicom,
    parse_ct,
    read_ct,
    read_ct_file,
)
from fsd.io.dicom.series import CTSlice, group_series, order_along_normal, slice_normal

__all__ = [
    "CT_SOP_CLASSES",
    "DEFAULT_MAX_PIXEL_BYTES",
    "MAX_FRAMES",
    "NATIVE_TRANSFER_SYNTAXES",
    "NON_PIXEL_ALLOWANCE",
    "CTSlice",
    "DicomError",
    "DicomFile",
    "ParsedCT",
    "check_ct",
    "check_file",
    "decode_ct",
    "group_series",
    "hash_uid",
    "open_dicom",
    "order_along_normal",
    "parse_ct",
    "read_ct",
    "read_ct_file",
    "slice_normal",
    "supported_transfer_syntaxes",
]
