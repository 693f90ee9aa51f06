"""Which transfer syntaxes the CT reader can decode, with which plugins, and what frames declare.

Support is decided from the transfer syntax UID and the license-clean pydicom decoding plugins
that can be imported here, never by trying to decode. ``codestream_size`` reads the image size a
JPEG or JPEG 2000 frame declares in its own header, so a frame that would make a decoder
allocate more than the header of the DICOM file promises is refused before decoding.
"""

from __future__ import annotations

import importlib.util
import struct
from functools import cache

from pydicom import uid as dicom_uid
from pydicom.pixels import get_decoder

NATIVE_TRANSFER_SYNTAXES: frozenset[str] = frozenset(
    {
        dicom_uid.ImplicitVRLittleEndian,
        dicom_uid.ExplicitVRLittleEndian,
        dicom_uid.DeflatedExplicitVRLittleEndian,
        dicom_uid.ExplicitVRBigEndian,
    }
)
JPEG_SYNTAXES: frozenset[str] = frozenset(
    {
        dicom_uid.JPEGBaseline8Bit,
        dicom_uid.JPEGExtended12Bit,
        dicom_uid.JPEGLossless,
        dicom_uid.JPEGLosslessSV1,
    }
)
JPEG_2000_SYNTAXES: frozenset[str] = frozenset(
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
# The modules each plugin needs; a plugin counts as usable only when all of them import.
_PLUGIN_MODULES: dict[str, tuple[str, ...]] = {
    "pydicom": (),
    "gdcm": ("gdcm",),
    "pillow": ("PIL",),
    "pylibjpeg": ("pylibjpeg", "openjpeg"),
}
_JPEG_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


@cache
def usable_plugins(transfer_syntax: str) -> tuple[str, ...]:
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
    compressed = {syntax for syntax in _DECODING_PLUGINS if usable_plugins(syntax)}
    return NATIVE_TRANSFER_SYNTAXES | compressed


def codestream_size(syntax: str, frame: bytes) -> tuple[int, int] | None:
    """(rows, columns) a JPEG or JPEG 2000 frame declares in its own header; None if unparseable."""
    try:
        if syntax in JPEG_2000_SYNTAXES:
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
