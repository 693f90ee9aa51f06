"""Content negotiation of the detect routes: JSON by default, a DICOM SR on request.

``Accept: application/dicom`` asks for the Structured Report. When both are acceptable the
higher quality value wins, and JSON wins a tie unless DICOM is named explicitly while JSON only
matches through a wildcard. An Accept header that admits neither is answered with 406.
"""

from __future__ import annotations

from service.errors import ServiceError

JSON = "application/json"
DICOM = "application/dicom"


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
