"""Each thing once, counted along the PACS path (issue 21, item 4): a study received by STOW-RS
or by C-STORE, analysed, its SR delivered by C-STORE to a stand-in PACS and read back by
WADO-RS. Every received instance is parsed once (by :func:`fsd.io.dicom.open_dicom`, at
intake) and never again; the SR is built once, encoded once and read back once (for its UIDs
and DICOM JSON metadata), whichever ways it then leaves.

The counts are taken by wrapping the pydicom and highdicom calls the service makes (each still
runs); none of the service's own components is replaced.
"""

from __future__ import annotations

import io
from collections import Counter
from typing import Any

import highdicom as hd
import pydicom
import pytest
from dicom_helpers import free_port, fresh_study, send_study, storage_scp, wait_for
from service_helpers import AUTH, serving, stow_request

import fsd.io.dicom.parsing
import service.delivery.sr
import service.delivery.sr_store
import service.http.routes.wado

#: every module of the project that calls pydicom's reader or writer on the service's path
READERS = (fsd.io.dicom.parsing, service.delivery.sr_store, service.http.routes.wado)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, Counter]:
    """Counts of pydicom reads (by module and Modality read), SR documents built and encoded."""
    counts: dict[str, Counter] = {"read": Counter(), "built": Counter(), "encoded": Counter()}

    def reader(module: Any) -> None:
        real = module.dcmread

        def read(*args: Any, **kwargs: Any) -> pydicom.Dataset:
            dataset = real(*args, **kwargs)
            counts["read"][(module.__name__, str(dataset.get("Modality", "")))] += 1
            return dataset

        monkeypatch.setattr(module, "dcmread", read)

    for module in READERS:
        reader(module)

    real_write = service.delivery.sr.dcmwrite

    def write(*args: Any, **kwargs: Any) -> None:
        counts["encoded"]["SR"] += 1
        real_write(*args, **kwargs)

    monkeypatch.setattr(service.delivery.sr, "dcmwrite", write)

    class CountedSR(hd.sr.Comprehensive3DSR):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            counts["built"]["SR"] += 1
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(hd.sr, "Comprehensive3DSR", CountedSR)
    return counts


@pytest.mark.parametrize("route", ["stow-rs", "c-store"])
def test_each_instance_is_parsed_once_and_the_sr_built_once(make_app, series_uploads, counted, route):
    datasets = fresh_study([data for _, data in series_uploads[:3]])
    study = str(datasets[0].StudyInstanceUID)
    pacs_port = free_port()
    settings: dict[str, Any] = {
        "sr_destination_ae_title": "PACS", "sr_destination_host": "127.0.0.1", "sr_destination_port": pacs_port,
    }
    if route == "c-store":
        settings.update(dicom_enabled=True, dicom_port=0, dicom_allowed_calling_ae_titles=["TESTSCU"])
    with storage_scp(pacs_port) as pacs, serving(make_app(**settings)) as client:
        counted["read"].clear()  # the warm-up reads nothing, but start from zero whatever it does
        if route == "stow-rs":
            encoded = []
            for dataset in datasets:
                buffer = io.BytesIO()
                dataset.save_as(buffer, enforce_file_format=True)
                encoded.append(buffer.getvalue())
            body, content_type = stow_request(encoded)
            response = client.post("/v1/studies", content=body, headers={**AUTH, "Content-Type": content_type})
            assert response.status_code == 200, response.text
        else:
            assert send_study(client.app.state.dicom_node.port, datasets) == [0x0000] * len(datasets)
        (delivered,) = wait_for(lambda: list(pacs.received), what="the SR at the PACS")
        assert delivered.StudyInstanceUID == study
        read_back = client.get(f"/v1/studies/{study}", headers={**AUTH, "Accept": "multipart/related; type=application/dicom"})
        assert read_back.status_code == 200
        metadata = client.get(f"/v1/studies/{study}/metadata", headers={**AUTH, "Accept": "application/dicom+json"})
        assert metadata.status_code == 200
    assert counted["read"] == Counter(
        {("fsd.io.dicom.parsing", "CT"): len(datasets), ("service.delivery.sr_store", "SR"): 1}
    ), "each instance parsed once at intake, the SR read back once after encoding, nothing parsed again"
    assert counted["built"]["SR"] == 1 and counted["encoded"]["SR"] == 1, "one SR, built and encoded once"
