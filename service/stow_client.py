"""Deliver an SR to a DICOMweb server with STOW-RS (``POST {base}/studies``), e.g. Orthanc's
``/dicom-web``, with the configured Authorization header.

Success is 200, or 202 whose store response does not list the SR as failed. Anything else
(connection refused, timeouts, 4xx, 5xx, a 409 or a failed SR) is a :class:`DeliveryError`
for the delivery queue to retry.
"""

from __future__ import annotations

import io

import httpx
from pydicom import dcmread

from service.destinations import DeliveryError
from service.multipart import encode_related

DICOM = "application/dicom"
#: (0008,1198) FailedSOPSequence, (0008,1155) ReferencedSOPInstanceUID in DICOM JSON
_FAILED_SOP_SEQUENCE = "00081198"
_REFERENCED_SOP_INSTANCE_UID = "00081155"


def _failed_uids(answer: httpx.Response) -> set[str]:
    try:
        document = answer.json()
    except ValueError:
        return set()
    items = (document.get(_FAILED_SOP_SEQUENCE) or {}).get("Value") or [] if isinstance(document, dict) else []
    return {
        str(value)
        for item in items
        if isinstance(item, dict)
        for value in (item.get(_REFERENCED_SOP_INSTANCE_UID) or {}).get("Value") or []
    }


class StowDestination:
    kind = "stow"

    def __init__(self, base_url: str, *, authorization: str | None, timeout_s: float) -> None:
        self.url = f"{base_url.rstrip('/')}/studies"
        self._headers = {"Accept": "application/dicom+json"}
        if authorization:
            self._headers["Authorization"] = authorization
        self._timeout_s = timeout_s

    def describe(self) -> str:
        return f"STOW-RS {httpx.URL(self.url).copy_with(username=None, password=None, query=None)}"

    def send(self, data: bytes) -> None:
        sop_instance: str = str(getattr(dcmread(io.BytesIO(data), stop_before_pixels=True), "SOPInstanceUID", ""))
        body, content_type = encode_related([data], DICOM)
        try:
            answer = httpx.post(
                self.url, content=body, headers={**self._headers, "Content-Type": content_type}, timeout=self._timeout_s
            )
        except httpx.HTTPError as error:
            raise DeliveryError(f"{type(error).__name__} from {self.describe()}") from None
        if answer.status_code not in (200, 202):
            raise DeliveryError(f"{self.describe()} answered HTTP {answer.status_code}")
        if answer.status_code == 202 and sop_instance in _failed_uids(answer):
            raise DeliveryError(f"{self.describe()} refused the SR (listed in FailedSOPSequence)")


