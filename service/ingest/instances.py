"""One received DICOM instance, whichever way it came (STOW-RS part or C-STORE), and its triage.

Each instance is parsed once (:func:`fsd.io.dicom.open_dicom`). :func:`identify` reads from that
data set the few attributes that route it (SOP class and instance, study and series UIDs);
:func:`check` runs every remaining check of :func:`fsd.io.dicom.read_ct` under the pixel budget
without decoding, and returns the instance as intake holds it and analysis decodes it
(:class:`~service.analysis.received.ReceivedInstance`). Each says why an instance is refused
as a :class:`Refusal` carrying the storage status of :mod:`service.common.dicom_status`.
Messages name attributes and sizes only, never values (they may be patient data).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from fsd.io.dicom import CT_SOP_CLASSES, DicomError, DicomFile, check_file, open_dicom
from fsd.io.dicom.errors import NOT_DICOM
from service.analysis.received import ReceivedInstance
from service.common.dicom_status import (
    CANNOT_UNDERSTAND,
    DATA_SET_DOES_NOT_MATCH_SOP_CLASS,
    SOP_CLASS_NOT_SUPPORTED,
    status_of_dicom_error,
)

_UNREADABLE = (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError, OSError)


@dataclass(frozen=True)
class IdentifiedInstance:
    """A received file parsed once, and the UIDs that route it (not checked beyond that yet)."""

    file: DicomFile
    label: str
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    size: int


@dataclass(frozen=True)
class Refusal:
    """Why an instance was not accepted: a storage status and a sentence without patient data."""

    label: str
    status: int
    message: str
    sop_class_uid: str | None = None
    sop_instance_uid: str | None = None


def _text(value: object) -> str:
    return str(value or "").strip()


def identify(data: bytes, label: str, max_pixel_bytes: int) -> IdentifiedInstance | Refusal:
    """``data`` parsed, with its routing UIDs, or why it cannot be routed (not DICOM, too large to
    read, not CT, UIDs missing)."""
    try:
        file = open_dicom(data, max_pixel_bytes=max_pixel_bytes)
    except DicomError as error:
        if error.code == NOT_DICOM:
            return Refusal(label, CANNOT_UNDERSTAND, f"{label}: the data cannot be read as DICOM.")
        return Refusal(label, status_of_dicom_error(error.code), f"{label}: {error.message}")
    header = file.dataset
    try:
        meta_class = getattr(getattr(header, "file_meta", None), "MediaStorageSOPClassUID", None)
        sop_class = _text(header.get("SOPClassUID") or meta_class)
        sop_instance = _text(header.get("SOPInstanceUID"))
        study, series = _text(header.get("StudyInstanceUID")), _text(header.get("SeriesInstanceUID"))
        modality = _text(header.get("Modality")).upper()
    except _UNREADABLE:
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
    return IdentifiedInstance(file, label, sop_class, sop_instance, study, series, len(data))


def patient_digest(found: IdentifiedInstance) -> str:
    """A digest of the instance's patient identity (PatientID and PatientName), never kept in clear."""
    header = found.file.dataset
    try:
        identity = f"{_text(header.get('PatientID'))}\\{_text(header.get('PatientName'))}"
    except _UNREADABLE:
        identity = ""
    return hashlib.sha256(identity.encode("utf-8", errors="replace")).hexdigest()


def check(found: IdentifiedInstance, max_pixel_bytes: int) -> ReceivedInstance | Refusal:
    """The instance as intake holds it when its image passes every check short of decoding, or why
    it cannot be used."""
    try:
        parsed = check_file(found.file, max_pixel_bytes=max_pixel_bytes)
    except DicomError as error:
        return refusal_of(found, status_of_dicom_error(error.code), error.message)
    return ReceivedInstance(
        parsed, found.label, found.sop_class_uid, found.sop_instance_uid, found.study_instance_uid,
        found.series_instance_uid, patient_digest(found), found.size,
    )


def receive(data: bytes, label: str, max_pixel_bytes: int) -> ReceivedInstance | Refusal:
    """:func:`identify` then :func:`check`: one received file as intake holds it, or why not."""
    found = identify(data, label, max_pixel_bytes)
    return found if isinstance(found, Refusal) else check(found, max_pixel_bytes)


def refusal_of(instance: IdentifiedInstance | ReceivedInstance, status: int, message: str) -> Refusal:
    """A refusal of an otherwise readable instance (study or patient mismatch, duplicate, limits)."""
    return Refusal(instance.label, status, f"{instance.label}: {message}", instance.sop_class_uid, instance.sop_instance_uid)
