"""From a request body to the DICOM files it carries (:class:`~service.analysis.slices.Upload`).

``form_uploads`` takes the repeated ``files`` field of a ``multipart/form-data`` body (``/v1/detect``);
``stow_uploads`` takes the ``application/dicom`` parts of a STOW-RS ``multipart/related`` body.
What they return goes to analysis (detection) or ingest (STOW-RS intake). Everything stays in
memory; a body that is not what the route takes is answered 400, 413, 415 or 422.
"""

from __future__ import annotations

from service.analysis.slices import Upload
from service.common.multipart import (
    MediaType,
    MultipartError,
    Part,
    boundary_of,
    parse_header_value,
    parse_multipart,
)
from service.http.errors import ServiceError

FORM_FIELD = "files"
DICOM_MEDIA_TYPE = "application/dicom"


def _media_type(content_type: str | None) -> MediaType:
    return parse_header_value("content-type", content_type or "")


def _parts(body: bytes, media_type: MediaType) -> list[Part]:
    try:
        return parse_multipart(body, boundary_of(media_type))
    except MultipartError as error:
        raise ServiceError(400, "invalid_multipart", f"The multipart body is malformed: {error}.") from None


def _check_count(count: int, max_files: int) -> None:
    if count == 0:
        raise ServiceError(422, "no_files", "The request holds no DICOM file.")
    if count > max_files:
        raise ServiceError(
            413, "too_many_files", f"The request holds {count} files; the limit is {max_files} (setting max_files)."
        )


def form_uploads(body: bytes, content_type: str | None, max_files: int) -> list[Upload]:
    """The ``files`` parts of a multipart/form-data body (other form fields are ignored)."""
    media_type = _media_type(content_type)
    if media_type.essence != "multipart/form-data":
        raise ServiceError(
            415,
            "unsupported_media_type",
            f"POST /v1/detect takes multipart/form-data with one or more '{FORM_FIELD}' fields, "
            f"not {media_type.essence or 'a body without Content-Type'}.",
        )
    parts = [part for part in _parts(body, media_type) if part.field_name == FORM_FIELD]
    if not parts:
        raise ServiceError(422, "no_files", f"No file was sent: repeat the multipart field '{FORM_FIELD}' per DICOM file.")
    _check_count(len(parts), max_files)
    uploads = []
    for number, part in enumerate(parts, start=1):
        name = part.filename
        label = f"file {number} ({name})" if name else f"file {number}"
        uploads.append(Upload(data=part.content, label=label, source=name or f"file {number}"))
    return uploads


def stow_uploads(body: bytes, content_type: str | None, max_files: int) -> list[Upload]:
    """The parts of a STOW-RS body: multipart/related; type="application/dicom", one instance per part."""
    media_type = _media_type(content_type)
    declared = media_type.params.get("type", DICOM_MEDIA_TYPE).lower()
    if media_type.essence != "multipart/related" or declared != DICOM_MEDIA_TYPE:
        raise ServiceError(
            415,
            "unsupported_media_type",
            'POST /v1/studies takes STOW-RS bodies: Content-Type multipart/related; type="application/dicom"; '
            f"boundary=..., not {(content_type or 'a body without Content-Type').split(';')[0]}"
            + (f' with type="{declared}"' if declared != DICOM_MEDIA_TYPE else "")
            + ".",
        )
    parts = _parts(body, media_type)
    _check_count(len(parts), max_files)
    uploads = []
    for number, part in enumerate(parts, start=1):
        part_type = part.content_type
        if part_type is None or part_type.essence != DICOM_MEDIA_TYPE:
            found = part_type.essence if part_type else "no Content-Type"
            raise ServiceError(
                415, "unsupported_media_type", f"part {number} is {found}; every part must be {DICOM_MEDIA_TYPE}."
            )
        uploads.append(Upload(data=part.content, label=f"part {number}", source=f"part {number}"))
    return uploads
