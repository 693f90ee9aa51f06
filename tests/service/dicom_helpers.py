"""DIMSE peers for the service tests, built with pynetdicom: a C-ECHO / C-STORE sender and a
Storage SCP that stands in for a PACS receiving SRs (imported by name, like service_helpers)."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import pydicom
from pydicom import Dataset
from pydicom.uid import (
    Comprehensive3DSRStorage,
    CTImageStorage,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)
from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification

NODE_AE = "FSD"
SENDER_AE = "TESTSCU"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def datasets_of(datas: Sequence[bytes]) -> list[Dataset]:
    return [pydicom.dcmread(io.BytesIO(data)) for data in datas]


def sender_ae(calling: str) -> AE:
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    for sop_class in (CTImageStorage, EnhancedCTImageStorage):
        ae.add_requested_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    return ae


def echo(port: int, *, calling: str = SENDER_AE, called: str = NODE_AE) -> int | None:
    """C-ECHO status, or None when the association is refused."""
    association = sender_ae(calling).associate("127.0.0.1", port, ae_title=called)
    if not association.is_established:
        return None
    status = association.send_c_echo()
    association.release()
    return int(status.Status) if status else None


def send_study(
    port: int, datasets: Sequence[Dataset], *, calling: str = SENDER_AE, called: str = NODE_AE
) -> list[int] | None:
    """C-STORE every data set over one association; their statuses, or None when refused."""
    association = sender_ae(calling).associate("127.0.0.1", port, ae_title=called)
    if not association.is_established:
        return None
    statuses = []
    for dataset in datasets:
        status = association.send_c_store(dataset)
        statuses.append(int(status.Status) if status else -1)
    association.release()
    return statuses


def wait_for(predicate: Callable[[], object], timeout_s: float = 60.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


class StorageSCP:
    """A C-STORE SCP accepting Comprehensive 3D SR (a stand-in for a PACS), keeping what it gets.

    ``status`` is what it answers each C-STORE (a refusal keeps nothing); ``require_called_aet``
    makes it reject associations addressed to another AE title, as a PACS does.
    """

    def __init__(self, port: int, ae_title: str = "PACS", *, status: int = 0x0000, require_called_aet: bool = False) -> None:
        self.port = port
        self.ae_title = ae_title
        self.status = status
        self.require_called_aet = require_called_aet
        self.received: list[Dataset] = []
        self.attempts = 0
        self._lock = threading.Lock()
        self._server = None

    def _on_store(self, event: evt.Event) -> int:
        with self._lock:
            self.attempts += 1
            if self.status == 0x0000:
                self.received.append(event.dataset)
        return self.status

    def start(self) -> None:
        ae = AE(ae_title=self.ae_title)
        ae.add_supported_context(Comprehensive3DSRStorage, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        ae.require_called_aet = self.require_called_aet
        self._server = ae.start_server(
            ("127.0.0.1", self.port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._on_store)]
        )

    @property
    def open_associations(self) -> int:
        return len(self._server.active_associations) if self._server is not None else 0

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None


@contextmanager
def storage_scp(port: int, **options: object) -> Iterator[StorageSCP]:
    scp = StorageSCP(port, **options)  # type: ignore[arg-type]
    scp.start()
    try:
        yield scp
    finally:
        scp.stop()


def fresh_study(
    slices: Sequence[bytes], series_count: int = 1, *, patient: str | None = None, study: str | None = None
) -> list[Dataset]:
    """The slices as a new study (new study, series and instance UIDs; ``study`` to reuse a study
    UID) of ``series_count`` series of consecutive slices, as a modality would send it;
    ``patient`` gives it that PatientID (and a PatientName made of it)."""
    study, series = study or generate_uid(), [generate_uid() for _ in range(series_count)]
    per_series = -(-len(slices) // series_count)
    datasets = []
    for index, data in enumerate(slices):
        ds = pydicom.dcmread(io.BytesIO(data))
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series[index // per_series]
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        if patient is not None:
            ds.PatientID, ds.PatientName = patient, f"{patient}^Test"
        datasets.append(ds)
    return datasets


def sr_evidence(sr: Dataset) -> set[str]:
    """The SOP Instance UIDs an SR names as its evidence."""
    return {
        item.ReferencedSOPInstanceUID
        for entry in sr.CurrentRequestedProcedureEvidenceSequence
        for series in entry.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    }


def retrieve_when_analysed(client: object, study: str) -> list[Dataset]:
    """dicomweb-client's retrieve_study once the study is analysed (the store response comes first)."""
    from requests import HTTPError

    def retrieved() -> list[Dataset] | None:
        try:
            return client.retrieve_study(study)  # type: ignore[attr-defined,no-any-return]
        except HTTPError as error:
            assert error.response is not None and error.response.status_code == 404, error
            return None

    return wait_for(retrieved, timeout_s=90, what="the SR by WADO-RS")  # type: ignore[return-value]
