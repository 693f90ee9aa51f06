"""Why an instance was not accepted, as the status codes DICOM defines for storage.

The same 16-bit values are the C-STORE response Status (PS3.4 B.2.3) and the STOW-RS
FailureReason (0008,1197) (PS3.18 Table I.2-1), so the DICOM node and the STOW-RS route refuse an
instance with the same code for the same problem. :func:`status_of_dicom_error` maps the stable
:class:`fsd.io.dicom.DicomError` codes onto them.

Whether sending again may help: ``A7xx`` (out of resources) and a processing failure may pass
later; ``A9xx`` (data set does not match), ``Cxxx`` (cannot understand), ``0122`` (SOP class
not supported) and ``0124`` (not authorised) will not (:func:`is_permanent_refusal`). The
service refuses what it will never accept with a permanent status, so senders do not loop, and
treats a peer's permanent refusal of its own SRs the same way.
"""

from __future__ import annotations

from fsd.io.dicom.errors import (
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
)

SUCCESS = 0x0000
#: the analysis of an accepted instance failed
PROCESSING_FAILURE = 0x0110
#: the same SOP instance was sent twice in one request
DUPLICATE_SOP_INSTANCE = 0x0111
#: not a CT image (the only SOP classes the model reads)
SOP_CLASS_NOT_SUPPORTED = 0x0122
#: no room for now (memory for received instances, the SR delivery queue, shutdown): retry later
OUT_OF_RESOURCES = 0xA700
#: the data set lacks what its SOP class needs, or belongs to another study than the one addressed
DATA_SET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
#: not DICOM, or unreadable
CANNOT_UNDERSTAND = 0xC000
#: compressed with a transfer syntax no installed decoder reads
TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122
#: over a configured size limit (the pixel budget of one file, or the instances or bytes of one
#: study): sending it again cannot help, so it is a "cannot understand" (Cxxx) failure, never A700
OVER_LIMIT = 0xC001
#: the sender is not allowed to store
NOT_AUTHORIZED = 0x0124

_BY_DICOM_ERROR: dict[str, int] = {
    NOT_DICOM: CANNOT_UNDERSTAND,
    FILE_UNREADABLE: CANNOT_UNDERSTAND,
    NOT_CT: SOP_CLASS_NOT_SUPPORTED,
    MISSING_TAG: DATA_SET_DOES_NOT_MATCH_SOP_CLASS,
    INVALID_TAG: DATA_SET_DOES_NOT_MATCH_SOP_CLASS,
    NO_PIXELS: DATA_SET_DOES_NOT_MATCH_SOP_CLASS,
    TRUNCATED: DATA_SET_DOES_NOT_MATCH_SOP_CLASS,
    INVALID_PIXEL_DATA: DATA_SET_DOES_NOT_MATCH_SOP_CLASS,
    INVALID_GEOMETRY: DATA_SET_DOES_NOT_MATCH_SOP_CLASS,
    TOO_LARGE: OVER_LIMIT,
    UNSUPPORTED_TRANSFER_SYNTAX: TRANSFER_SYNTAX_NOT_SUPPORTED,
}


def status_of_dicom_error(code: str) -> int:
    """The storage status for a DicomError code (processing failure for codes not listed)."""
    return _BY_DICOM_ERROR.get(code, PROCESSING_FAILURE)


def is_permanent_refusal(status: int) -> bool:
    """True for failure statuses that sending the same instance again cannot change."""
    return status in (SOP_CLASS_NOT_SUPPORTED, NOT_AUTHORIZED) or 0xA900 <= status <= 0xA9FF or 0xC000 <= status <= 0xCFFF


def hex_status(status: int) -> str:
    """``0xA700`` style, for logs and messages."""
    return f"0x{status:04X}"
