"""Deliver an SR to a DICOM AE with C-STORE (pynetdicom SCU), e.g. a PACS or Orthanc.

One association per delivery: associate, C-STORE the Comprehensive 3D SR, release; whatever
happens while it is open, it is released or aborted before ``send`` returns. Success and the
storage warnings (B000, B006, B007: the peer stored it) count as delivered. A permanent
:class:`DeliveryError` (the PACS will never take this SR): an association rejected permanently
(e.g. unknown AE titles), a PACS that accepts no presentation context for the SR, or a failure
status that sending again cannot change (A9xx, Cxxx, 0122, 0124). Everything else (no
connection, a transient rejection, an abort, a timeout, A7xx, 0110) is transient and retried.
The SR's data set is sent as built (:class:`~service.delivery.sr_store.KeptSR`), never parsed
back from its bytes.
"""

from __future__ import annotations

from pydicom.uid import Comprehensive3DSRStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.association import Association

from service.common.dicom_status import hex_status, is_permanent_refusal
from service.delivery.destination import DeliveryError
from service.delivery.sr_store import KeptSR

STORED_STATUSES = frozenset({0x0000, 0xB000, 0xB006, 0xB007})
#: A-ASSOCIATE-RJ result "rejected-permanent" (PS3.8 9.3.4)
_REJECTED_PERMANENT = 0x01


def _refusal(association: Association, where: str) -> DeliveryError:
    """Why ``association`` was not established, and whether trying again may help."""
    answer = association.acceptor.primitive
    result = getattr(answer, "result", None)
    if association.is_rejected:
        permanent = result == _REJECTED_PERMANENT
        return DeliveryError(f"association with {where} rejected ({'permanent' if permanent else 'transient'})", permanent=permanent)
    if result == 0x00 and not association.accepted_contexts:
        return DeliveryError(f"{where} accepts no presentation context for Comprehensive 3D SR", permanent=True)
    return DeliveryError(f"association with {where} aborted or unreachable")


class DimseDestination:
    """A DICOM AE (a PACS) that SRs are C-STOREd to, one association per SR."""

    kind = "dimse"

    def __init__(self, *, called_ae_title: str, host: str, port: int, calling_ae_title: str, timeout_s: float) -> None:
        self.called_ae_title = called_ae_title
        self.host = host
        self.port = port
        self.calling_ae_title = calling_ae_title
        self.timeout_s = timeout_s

    def describe(self) -> str:
        return f"DICOM AE {self.called_ae_title} at {self.host}:{self.port}"

    def _application_entity(self) -> AE:
        ae = AE(ae_title=self.calling_ae_title)
        ae.add_requested_context(Comprehensive3DSRStorage, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout_s
        ae.connection_timeout = min(self.timeout_s, 10.0)
        return ae

    def send(self, sr: KeptSR) -> None:
        try:
            association = self._application_entity().associate(self.host, self.port, ae_title=self.called_ae_title)
        except (OSError, RuntimeError, ValueError) as error:
            raise DeliveryError(f"cannot connect to {self.describe()}: {type(error).__name__}") from None
        if not association.is_established:
            raise _refusal(association, self.describe())
        try:
            status = association.send_c_store(sr.dataset)
        except (OSError, RuntimeError, ValueError) as error:
            raise DeliveryError(f"C-STORE to {self.describe()} failed: {type(error).__name__}") from None
        finally:
            if association.is_established:
                association.release()
            if association.is_established:  # the peer did not answer the release request
                association.abort()
        code = status.get("Status") if status else None
        if code is None:
            raise DeliveryError(f"no C-STORE response from {self.describe()} (timeout or abort)")
        if int(code) not in STORED_STATUSES:
            raise DeliveryError(
                f"{self.describe()} refused the SR with status {hex_status(int(code))}",
                permanent=is_permanent_refusal(int(code)),
            )
