"""One received DICOM instance, whichever way it came (STOW-RS part or C-STORE), and its triage.

:func:`identify` reads the few header attributes that route an instance (SOP class and instance,
study and series UIDs) without touching pixel data; :func:`validate` runs every check of
:func:`fsd.io.dicom.read_ct` under the pixel budget without decoding (what intake does before
accepting an instance); :func:`decode` reads it as CT slices (what the analysis does, later).
Each says why an instance is refused as a :class:`Refusal` carrying the storage status of
:mod:`service.dicom_status`. Messages name attributes and sizes only, never values (they may be
patient data).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from fsd.io.dicom import CT_SOP_CLASSES, CTSlice, DicomError, check_ct, read_ct
from service.dicom_status import (
    CANNOT_UNDERSTAND,
    DATA_SET_DOES_NOT_MATCH_SOP_CLASS,
    SOP_CLASS_NOT_SUPPORTED,
    status_of_dicom_error,
)

_ROUTING_TAGS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "Modality")


@dataclass(frozen=True)
class Instance:
    """A CT instance as received: its encoded bytes (Part 10) and the UIDs that route it."""

    data: bytes
    label: str
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str


@dataclass(frozen=True)
class Refusal:
    """Why an instance was not accepted: a storage status and a sentence without patient data."""

    label: str
    status: int
    message: str
    sop_class_uid: str | None = None
    sop_instance_uid: str | None = None


@dataclass(frozen=True)
class DecodedInstance:
    """An accepted instance and its CT slices in HU (one per frame), decoded for its analysis."""

    instance: Instance
    slices: list[CTSlice]


def _text(value: object) -> str:
    return str(value or "").strip()


def identify(data: bytes, label: str) -> Instance | Refusal:
    """The routing UIDs of ``data``, or why it cannot be routed (not DICOM, not CT, UIDs missing)."""
    try:
        header = dcmread(io.BytesIO(data), stop_before_pixels=True, force=True, specific_tags=list(_ROUTING_TAGS))
        meta_class = getattr(getattr(header, "file_meta", None), "MediaStorageSOPClassUID", None)
        sop_class = _text(header.get("SOPClassUID") or meta_class)
        sop_instance = _text(header.get("SOPInstanceUID"))
        study, series = _text(header.get("StudyInstanceUID")), _text(header.get("SeriesInstanceUID"))
        modality = _text(header.get("Modality")).upper()
    except (InvalidDicomError, OSError, ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError):
        return Refusal(label, CANNOT_UNDERSTAND, f"{label}: the data cannot be read as DICOM.")
    if not sop_class and not sop_instance:
        return Refusal(label, CANNOT_UNDERSTAND, f"{label}: the data is not a DICOM instance (no SOP class or instance UID).")
    if sop_class not in CT_SOP_CLASSES or modality not in ("", "CT"):
        return Refusal(
            label, SOP_CLASS_NOT_SUPPORTED, f"{label}: not a CT image; only CT and Enhanced CT images are analysed.",
            sop_class or None, sop_instance or None,
        )
    missing = [name for name, value in (("SOPInstanceUID", sop_instance), ("StudyInstanceUID", study), ("SeriesInstanceUID", series)) if not value]
    if missing:
        return Refusal(
            label, DATA_SET_DOES_NOT_MATCH_SOP_CLASS, f"{label}: {', '.join(missing)} missing.", sop_class, sop_instance or None
        )
    return Instance(data, label, sop_class, sop_instance, study, series)


def _refusal_of_dicom_error(instance: Instance, error: DicomError) -> Refusal:
    return Refusal(
        instance.label, status_of_dicom_error(error.code), f"{instance.label}: {error.message}",
        instance.sop_class_uid, instance.sop_instance_uid,
    )


def validate(instance: Instance, max_pixel_bytes: int) -> Instance | Refusal:
    """``instance`` when its image passes every check short of decoding, or why it cannot be used."""
    try:
        check_ct(instance.data, max_pixel_bytes=max_pixel_bytes)
    except DicomError as error:
        return _refusal_of_dicom_error(instance, error)
    return instance


def decode(instance: Instance, max_pixel_bytes: int) -> DecodedInstance | Refusal:
    """``instance`` read as CT slices (one per frame), or why its image cannot be used."""
    try:
        slices = read_ct(instance.data, max_pixel_bytes=max_pixel_bytes)
    except DicomError as error:
        return _refusal_of_dicom_error(instance, error)
    return DecodedInstance(instance, slices)


def refusal_of(instance: Instance, status: int, message: str) -> Refusal:
    """A refusal of an otherwise readable instance (study mismatch, duplicate, processing failure)."""
    return Refusal(instance.label, status, f"{instance.label}: {message}", instance.sop_class_uid, instance.sop_instance_uid)
