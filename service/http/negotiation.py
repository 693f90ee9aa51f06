"""Content negotiation: the detect routes, STOW-RS and WADO-RS.

Detect routes: JSON by default, a DICOM SR on request. ``Accept: application/dicom`` asks for
the Structured Report. When both are acceptable the higher quality value wins, and JSON wins a
tie unless DICOM is named explicitly while JSON only matches through a wildcard. An Accept
header that admits neither is answered with 406.

STOW-RS (``POST /v1/studies``): the PS3.18 store response (``application/dicom+json``) unless
the client prefers the service's own answers, the detection JSON (``application/json`` named
explicitly) or the SR (``application/dicom``); an explicit name beats a wildcard at equal quality.

WADO-RS: ``multipart/related; type="application/dicom"`` with an uncompressed transfer syntax
for instances, DICOM JSON for metadata.
"""

from __future__ import annotations

from typing import Literal

from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from service.common.multipart import parse_header_value
from service.http.errors import ServiceError

JSON = "application/json"
DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
StowAnswer = Literal["store", "results", "sr"]


def _ranges(accept: str) -> list[tuple[str, float]]:
    ranges = []
    for entry in accept.split(","):
        media, *params = (piece.strip() for piece in entry.split(";"))
        if not media:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    quality = 0.0
        ranges.append((media.lower(), quality))
    return ranges


def _quality(ranges: list[tuple[str, float]], media: str) -> tuple[float, bool]:
    """(quality, named explicitly) of ``media``: the most specific matching range decides."""
    kind = media.split("/")[0] + "/*"
    for candidate, explicit in ((media, True), (kind, False), ("*/*", False)):
        for name, quality in ranges:
            if name == candidate:
                return quality, explicit
    return 0.0, False


def wants_dicom(accept: str | None) -> bool:
    """True when the client prefers a DICOM SR; ServiceError 406 when it accepts neither."""
    if not accept or not accept.strip():
        return False
    ranges = _ranges(accept)
    json_quality, json_explicit = _quality(ranges, JSON)
    dicom_quality, dicom_explicit = _quality(ranges, DICOM)
    if json_quality <= 0 and dicom_quality <= 0:
        raise ServiceError(
            406, "not_acceptable", f"This route answers {JSON} (results) or {DICOM} (a DICOM SR); the Accept header allows neither."
        )
    if dicom_quality != json_quality:
        return dicom_quality > json_quality
    return dicom_explicit and not json_explicit


def stow_answer(accept: str | None, *, store_only: bool = False) -> StowAnswer:
    """Which answer a STOW-RS client gets; ``store_only`` routes offer the store response alone."""
    if not accept or not accept.strip():
        return "store"
    ranges = _ranges(accept)
    offers: list[tuple[str, StowAnswer]] = [(DICOM_JSON, "store")]
    if not store_only:
        offers += [(JSON, "results"), (DICOM, "sr")]
    scored = [(*_quality(ranges, media), -rank, kind) for rank, (media, kind) in enumerate(offers)]
    quality, _, _, kind = max(scored)
    if quality <= 0:
        offered = " or ".join(media for media, _ in offers)
        raise ServiceError(406, "not_acceptable", f"This route answers {offered}; the Accept header allows none of them.")
    return kind


def wado_transfer_syntax(accept: str | None) -> str | None:
    """The transfer syntax a WADO-RS instance request accepts (None: as stored); 406 otherwise.

    Offered: ``multipart/related; type="application/dicom"`` in Explicit or Implicit VR Little
    Endian, ``transfer-syntax=*`` for as stored.
    """
    if not accept or not accept.strip():
        return None
    offered = {ExplicitVRLittleEndian, ImplicitVRLittleEndian}
    for entry in accept.split(","):
        media = parse_header_value("accept", entry)
        quality = media.params.get("q", "1")
        if quality.strip() in ("0", "0.0", "0.00", "0.000"):
            continue
        if media.essence in ("*/*", "multipart/*"):
            return None
        if media.essence != "multipart/related" or media.params.get("type", DICOM).lower() not in (DICOM, "*/*"):
            continue
        syntax = media.params.get("transfer-syntax", ExplicitVRLittleEndian)
        if syntax == "*":
            return None
        if syntax in offered:
            return syntax
    raise ServiceError(
        406,
        "not_acceptable",
        'Instances are served as multipart/related; type="application/dicom" in Explicit or Implicit VR Little Endian.',
    )


def wants_metadata_json(accept: str | None) -> str:
    """The media type of a WADO-RS metadata answer (DICOM JSON); 406 when the client takes none."""
    if not accept or not accept.strip():
        return DICOM_JSON
    ranges = _ranges(accept)
    dicom_json, _ = _quality(ranges, DICOM_JSON)
    plain, explicit = _quality(ranges, JSON)
    if dicom_json <= 0 and plain <= 0:
        raise ServiceError(406, "not_acceptable", f"Metadata is answered as {DICOM_JSON}; the Accept header does not allow it.")
    return JSON if plain > dicom_json and explicit else DICOM_JSON
