"""Deliver an SR to a DICOM AE with C-STORE (pynetdicom SCU), e.g. a PACS or Orthanc.

One association per delivery: associate, C-STORE the Comprehensive 3D SR, release. Success and
the storage warnings (B000, B006, B007: the peer stored it) count as delivered; a rejected or
aborted association, a timeout or any failure status is a :class:`DeliveryError`.
"""

from __future__ import annotations

import io

from pydicom import dcmread
from pydicom.uid import Comprehensive3DSRStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE

from service.destinations import DeliveryError
from service.dicom_status import hex_status

STORED_STATUSES = frozenset({0x0000, 0xB000, 0xB006, 0xB007})


class DimseDestination:
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

    def send(self, data: bytes) -> None:
        dataset = dcmread(io.BytesIO(data))
        try:
            association = self._application_entity().associate(self.host, self.port, ae_title=self.called_ae_title)
        except (OSError, RuntimeError, ValueError) as error:
            raise DeliveryError(f"cannot connect to {self.describe()}: {type(error).__name__}") from None
        if not association.is_established:
            outcome = "rejected" if association.is_rejected else "aborted or unreachable"
            raise DeliveryError(f"association with {self.describe()} {outcome}")
        try:
            status = association.send_c_store(dataset)
        except (OSError, RuntimeError, ValueError) as error:
            association.abort()
            raise DeliveryError(f"C-STORE to {self.describe()} failed: {type(error).__name__}") from None
        code = status.get("Status") if status else None
        if association.is_established:
            association.release()
        if code is None:
            raise DeliveryError(f"no C-STORE response from {self.describe()} (timeout or abort)")
        if int(code) not in STORED_STATUSES:
            raise DeliveryError(f"{self.describe()} refused the SR with status {hex_status(int(code))}")
