"""From a request body to model inputs: multipart parts -> uploads -> CT slices -> SliceInputs.

Both detect routes end here. ``form_uploads`` takes the repeated ``files`` field of a
``multipart/form-data`` body; ``stow_uploads`` takes the ``application/dicom`` parts of a STOW-RS
``multipart/related`` body. ``decode_uploads`` (run in the decode thread pool) reads every file
with :func:`fsd.io.dicom.read_ct` and builds the inputs with
:func:`fsd.inference.slice_inputs_from_ct`, the preprocessing `fsd predict` and training use.
Everything stays in memory.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from fsd.inference import SliceInput, slice_inputs_from_ct
from fsd.io.dicom import CTSlice, DicomError, read_ct
from fsd.preprocess import PreprocessConfig
from service.errors import ServiceError
from service.multipart import (
    MediaType,
    MultipartError,
    Part,
    boundary_of,
    parse_header_value,
    parse_multipart,
)

FORM_FIELD = "files"
DICOM_MEDIA_TYPE = "application/dicom"


@dataclass(frozen=True)
class Upload:
    """One uploaded DICOM file: its bytes, a label for messages and a source name for results."""

    data: bytes
    label: str
    source: str


@dataclass(frozen=True)
class DecodedUploads:
    """The slices read from the uploads, the model inputs made of them, and what each step took."""

    slices: list[CTSlice]
    inputs: list[SliceInput]
    decode_s: float = 0.0
    preprocess_s: float = 0.0


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


def _reject_duplicates(slices: list[CTSlice], labels: list[str]) -> None:
    seen: dict[tuple[str, int], str] = {}
    for ct_slice, label in zip(slices, labels):
        key = (ct_slice.sop_instance_uid, ct_slice.frame)
        if key in seen:
            raise ServiceError(
                422,
                "duplicate_instance",
                f"{label} repeats the SOP instance of {seen[key]}; send each image once.",
            )
        seen[key] = label


def decode_uploads(uploads: list[Upload], preprocess: PreprocessConfig, max_pixel_bytes: int) -> DecodedUploads:
    """Read every upload as CT and prepare one model input per slice (per frame).

    A file that cannot be used fails the whole request with its DicomError code, its message
    prefixed by the file's label.
    """
    started = time.perf_counter()
    slices: list[CTSlice] = []
    sources: list[str] = []
    labels: list[str] = []
    for upload in uploads:
        try:
            file_slices = read_ct(upload.data, max_pixel_bytes=max_pixel_bytes)
        except DicomError as error:
            raise DicomError(f"{upload.label}: {error.message}", error.code) from None
        slices.extend(file_slices)
        sources.extend([upload.source] * len(file_slices))
        labels.extend([upload.label] * len(file_slices))
    _reject_duplicates(slices, labels)
    decoded = time.perf_counter()
    try:
        inputs = slice_inputs_from_ct(slices, preprocess, sources)
    except ValueError as error:  # geometry the preprocessing cannot use; read_ct lets little through
        raise ServiceError(422, "invalid_geometry", f"The images cannot be prepared for the model: {error}.") from None
    return DecodedUploads(slices=slices, inputs=inputs, decode_s=decoded - started, preprocess_s=time.perf_counter() - decoded)
