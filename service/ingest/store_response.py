"""The STOW-RS store response of PS3.18 (10.5.3 and Annex I), as DICOM JSON.

- RetrieveURL (0008,1190): where the study can be read back (the service's SRs of it, by WADO-RS,
  once it is analysed), when the request concerns one study;
- ReferencedSOPSequence (0008,1199): one item per accepted instance with its SOP class and SOP
  instance; no per-instance RetrieveURL, since uploaded images are never kept to be retrieved;
- FailedSOPSequence (0008,1198): one item per refused instance with the UIDs that are known and
  its FailureReason (0008,1197).

Status: 200 when every instance was accepted, 202 when some were refused, 409 when none was.
Accepted means held for analysis: the analysis and the SR follow in the background.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydicom import Dataset

from service.analysis.received import ReceivedInstance
from service.ingest.instances import Refusal

MEDIA_TYPE = "application/dicom+json"


def study_url(base_url: str, study: str) -> str:
    """The WADO-RS URL of a study on this server (``base_url`` without a trailing slash)."""
    return f"{base_url}/v1/studies/{study}"


def _referenced(instance: ReceivedInstance) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = instance.sop_class_uid
    item.ReferencedSOPInstanceUID = instance.sop_instance_uid
    return item


def _failed(refusal: Refusal) -> Dataset:
    item = Dataset()
    if refusal.sop_class_uid:
        item.ReferencedSOPClassUID = refusal.sop_class_uid
    if refusal.sop_instance_uid:
        item.ReferencedSOPInstanceUID = refusal.sop_instance_uid
    item.FailureReason = refusal.status
    return item


def store_response(
    base_url: str, accepted: Sequence[ReceivedInstance], refused: Sequence[Refusal], study: str | None = None
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, DICOM JSON body) for ``accepted`` and ``refused`` instances of one request.

    ``study`` is the StudyInstanceUID of the target resource (``POST /v1/studies/{study}``).
    """
    response = Dataset()
    studies = {instance.study_instance_uid for instance in accepted}
    target = study or (next(iter(studies)) if len(studies) == 1 else None)
    if target is not None:
        response.RetrieveURL = study_url(base_url, target)
    if accepted:
        response.ReferencedSOPSequence = [_referenced(instance) for instance in accepted]
    if refused:
        response.FailedSOPSequence = [_failed(refusal) for refusal in refused]
    status = 200 if not refused else 202 if accepted else 409
    return status, response.to_json_dict()
