"""Deliver an SR to a DICOMweb server with STOW-RS (``POST {base}/studies``), e.g. Orthanc's
``/dicom-web``, with the configured Authorization header (over HTTPS, checked against the
system's CA certificates or the configured CA bundle).

Success is 200, or 202 whose store response does not list the SR as failed. A refusal that
sending again cannot change is a permanent :class:`DeliveryError`: HTTP 400, 401, 403, 404,
405, 413, 415 and 422 (a bad request, wrong credentials or URL, content it does not take), and
a 409 or 202 whose FailedSOPSequence gives the SR a permanent FailureReason
(:func:`service.common.dicom_status.is_permanent_refusal`). Everything else (connection refused,
timeouts, TLS failures, 408, 429, 5xx, A7xx, a 409 without a reason) is transient and retried.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx

from service.common.dicom_status import hex_status, is_permanent_refusal
from service.common.multipart import encode_related
from service.delivery.destination import DeliveryError
from service.delivery.sr_store import KeptSR

DICOM = "application/dicom"
#: HTTP statuses that say the server will never take this request
PERMANENT_HTTP_STATUSES = frozenset({400, 401, 403, 404, 405, 413, 415, 422})
#: (0008,1198) FailedSOPSequence, (0008,1155) ReferencedSOPInstanceUID, (0008,1197) FailureReason
_FAILED_SOP_SEQUENCE = "00081198"
_REFERENCED_SOP_INSTANCE_UID = "00081155"
_FAILURE_REASON = "00081197"


def _values(item: dict[str, object], tag: str) -> list[object]:
    element = item.get(tag)
    values = element.get("Value") if isinstance(element, dict) else None
    return values if isinstance(values, list) else []


def failure_reason(answer: httpx.Response, sop_instance_uid: str) -> int | None:
    """The FailureReason the store response gives the SR, or None when it does not list it as failed.

    An item without a ReferencedSOPInstanceUID counts as the SR's (we send one instance only).
    """
    try:
        document = answer.json()
    except ValueError:
        return None
    items = _values(document, _FAILED_SOP_SEQUENCE) if isinstance(document, dict) else []
    for item in items:
        if not isinstance(item, dict):
            continue
        uids = [str(value) for value in _values(item, _REFERENCED_SOP_INSTANCE_UID)]
        if uids and sop_instance_uid not in uids:
            continue
        reasons = [value for value in _values(item, _FAILURE_REASON) if isinstance(value, int)]
        return reasons[0] if reasons else 0x0110  # listed as failed without a reason: a processing failure
    return None


class StowDestination:
    """A DICOMweb server that SRs are stored to with STOW-RS, one SR per request."""

    kind = "stow"

    def __init__(
        self, base_url: str, *, authorization: str | None, timeout_s: float, ca_bundle: Path | None = None
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/studies"
        self._headers = {"Accept": "application/dicom+json"}
        if authorization:
            self._headers["Authorization"] = authorization
        self._timeout_s = timeout_s
        self._verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca_bundle)) if ca_bundle else True

    def describe(self) -> str:
        return f"STOW-RS {httpx.URL(self.url).copy_with(username=None, password=None, query=None)}"

    def send(self, sr: KeptSR) -> None:
        body, content_type = encode_related([sr.data], DICOM)
        try:
            answer = httpx.post(
                self.url,
                content=body,
                headers={**self._headers, "Content-Type": content_type},
                timeout=self._timeout_s,
                verify=self._verify,
            )
        except httpx.HTTPError as error:
            raise DeliveryError(f"{type(error).__name__} from {self.describe()}") from None
        status = answer.status_code
        if status in PERMANENT_HTTP_STATUSES:
            raise DeliveryError(f"{self.describe()} answered HTTP {status}", permanent=True)
        if status not in (200, 202, 409):
            raise DeliveryError(f"{self.describe()} answered HTTP {status}")
        reason = failure_reason(answer, sr.sop_instance_uid)
        if status == 409 and reason is None:
            raise DeliveryError(f"{self.describe()} answered HTTP 409 without a FailureReason for the SR")
        if reason is not None:
            raise DeliveryError(
                f"{self.describe()} refused the SR (HTTP {status}, FailureReason {hex_status(reason)})",
                permanent=is_permanent_refusal(reason),
            )
