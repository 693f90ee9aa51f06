"""The error raised for every DICOM input that cannot be read as a CT image, and its stable codes.

The server turns ``DicomError.code`` into its JSON error body, so the codes below are part of the
public contract: add new ones, never rename them. Messages name what is wrong (a tag, a transfer
syntax, a size) and never contain patient data.
"""

from __future__ import annotations

from fsd.errors import FsdError

#: Empty input, or bytes that are not DICOM (text, random bytes, another file format).
NOT_DICOM = "not_dicom"
#: A valid DICOM object that is not a CT image (MR, RT plan, structured report, ...).
NOT_CT = "not_ct"
#: A CT image without a tag the reader needs; the message names the tag.
MISSING_TAG = "missing_tag"
#: A tag the reader needs is present but its value is unreadable or impossible (e.g. Rows = 0).
INVALID_TAG = "invalid_tag"
#: No integer Pixel Data (absent, or only Float/Double Float Pixel Data).
NO_PIXELS = "no_pixels"
#: The declared image size is over the caller's pixel budget (checked before decoding).
TOO_LARGE = "too_large"
#: The pixels are compressed with a transfer syntax no installed license-clean decoder handles.
UNSUPPORTED_TRANSFER_SYNTAX = "unsupported_transfer_syntax"
#: The pixel data ends before the image it declares does.
TRUNCATED = "truncated"
#: The pixel data cannot be decoded or has a layout a CT reader does not accept.
INVALID_PIXEL_DATA = "invalid_pixel_data"
#: Pixel spacing, position or orientation is missing values, non-finite or impossible.
INVALID_GEOMETRY = "invalid_geometry"
#: ``read_ct_file`` could not read the file from disk.
FILE_UNREADABLE = "file_unreadable"

DICOM_ERROR_CODES: frozenset[str] = frozenset(
    {
        NOT_DICOM,
        NOT_CT,
        MISSING_TAG,
        INVALID_TAG,
        NO_PIXELS,
        TOO_LARGE,
        UNSUPPORTED_TRANSFER_SYNTAX,
        TRUNCATED,
        INVALID_PIXEL_DATA,
        INVALID_GEOMETRY,
        FILE_UNREADABLE,
    }
)


class DicomError(FsdError):
    """A DICOM input was rejected; ``code`` is one of ``DICOM_ERROR_CODES``."""

    code = NOT_DICOM

    def __init__(self, message: str, code: str) -> None:
        if code not in DICOM_ERROR_CODES:
            raise ValueError(f"unknown DICOM error code {code!r}")
        super().__init__(message, code)
