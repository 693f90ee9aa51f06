"""What the DICOM node negotiates: Verification, and CT / Enhanced CT Image Storage in every
transfer syntax the installed decoders read (:func:`fsd.io.dicom.supported_transfer_syntaxes`:
Implicit and Explicit VR Little Endian, Explicit Big Endian, Deflated, RLE, JPEG baseline,
extended and lossless, JPEG 2000, HTJ2K, as available)."""

from __future__ import annotations

from pydicom.uid import (
    CTImageStorage,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    LegacyConvertedEnhancedCTImageStorage,
)

from fsd.io.dicom import supported_transfer_syntaxes

STORAGE_SOP_CLASSES: tuple[str, ...] = (CTImageStorage, EnhancedCTImageStorage, LegacyConvertedEnhancedCTImageStorage)


def storage_transfer_syntaxes() -> list[str]:
    """Decodable transfer syntaxes, the uncompressed little-endian ones first (preferred)."""
    preferred = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
    others = sorted(set(supported_transfer_syntaxes()) - set(preferred))
    return [*preferred, *others]
