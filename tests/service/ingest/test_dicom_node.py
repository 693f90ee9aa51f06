"""The DICOM node against a real pynetdicom peer: access control, C-ECHO, C-STORE, when a
study is analysed, memory bounds, malformed input, and SR delivery back to a PACS (C-STORE)."""

from __future__ import annotations

import io
import socket
import time

import pydicom
import pytest
from dicom_helpers import datasets_of, echo, free_port, send_study, storage_scp, wait_for
from dicom_helpers import sr_evidence as _evidence
from service_helpers import AUTH, serving

from service.common.dicom_status import OUT_OF_RESOURCES, OVER_LIMIT, SOP_CLASS_NOT_SUPPORTED


def _node_app(make_app, **overrides):
    values = {"dicom_enabled": True, "dicom_port": 0, "dicom_allowed_calling_ae_titles": ["TESTSCU"]}
    values.update(overrides)
    return make_app(**values)


def _port(client) -> int:
    return client.app.state.dicom_node.port


def _kept(client, study: str) -> list:
    return client.app.state.sr_store.find(study)


def _metric(client, line_start: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_the_node_is_off_by_default(client):
    assert client.app.state.dicom_node is None


def test_echo_and_access_control(make_app):
    with serving(_node_app(make_app)) as client:
        port = _port(client)
        assert echo(port) == 0x0000
        assert echo(port, calling="STRANGER") is None, "unknown calling AE titles are refused"
        assert echo(port, called="OTHER") is None, "associations addressed to another AE title are refused"
        assert echo(port) == 0x0000, "the node lives on"
        assert _metric(client, 'fsd_dicom_associations_total{outcome="rejected_calling_ae_title"}') == 1
        assert _metric(client, 'fsd_dicom_associations_total{outcome="rejected_called_ae_title"}') == 1
    with serving(_node_app(make_app, dicom_allowed_hosts=["192.0.2.10"])) as client:
        assert echo(_port(client)) is None, "only the configured host may connect"


def test_a_study_is_analysed_when_its_association_ends(make_app, series_uploads):
    datas = [data for _, data in series_uploads]
    study = str(pydicom.dcmread(io.BytesIO(datas[0])).StudyInstanceUID)
    with serving(_node_app(make_app)) as client:
        statuses = send_study(_port(client), datasets_of(datas))
        assert statuses == [0x0000] * len(datas)
        (kept,) = wait_for(lambda: _kept(client, study), what="the study's SR")
        sr = pydicom.dcmread(io.BytesIO(kept.data))
        assert _evidence(sr) == {str(ds.SOPInstanceUID) for ds in datasets_of(datas)}
        retrieved = client.get(f"/v1/studies/{study}", headers=AUTH)
        assert retrieved.status_code == 200 and kept.sop_instance_uid.encode() in retrieved.content
        assert _metric(client, 'fsd_studies_analysed_total{outcome="analysed",source="dimse"}') == 1
        assert _metric(client, 'fsd_instances_received_total{source="dimse",status="0000"}') == len(datas)


def test_a_study_sent_over_several_associations_waits_for_the_quiet_time(make_app, series_uploads):
    datasets = datasets_of([data for _, data in series_uploads])
    study = str(datasets[0].StudyInstanceUID)
    with serving(_node_app(make_app, dicom_study_quiet_s=1.5)) as client:
        port = _port(client)
        assert send_study(port, datasets[:2]) == [0, 0]
        time.sleep(0.5)
        assert _kept(client, study) == [], "not analysed before the quiet time"
        assert send_study(port, datasets[2:]) == [0] * (len(datasets) - 2)
        (kept,) = wait_for(lambda: _kept(client, study), what="one SR for the whole study")
        assert _evidence(pydicom.dcmread(io.BytesIO(kept.data))) == {str(ds.SOPInstanceUID) for ds in datasets}
        time.sleep(2)
        assert len(_kept(client, study)) == 1


def test_non_ct_and_broken_instances_are_refused_with_storage_statuses(make_app, series_uploads):
    datasets = datasets_of([data for _, data in series_uploads[:2]])
    not_ct = datasets[0]
    not_ct.Modality = "MR"
    broken = datasets[1]
    broken.PixelData = broken.PixelData[:100]
    with serving(_node_app(make_app)) as client:
        assert send_study(_port(client), [not_ct, broken]) == [SOP_CLASS_NOT_SUPPORTED, 0xA900]
        assert echo(_port(client)) == 0


def test_an_oversized_study_is_refused_for_good_and_what_was_acknowledged_is_analysed(make_app, series_uploads):
    """Over the study limits: C001, which senders do not retry (A700 made them loop); the
    instances already answered 0000 are analysed, never thrown away."""
    datas = [data for _, data in series_uploads]
    study = str(pydicom.dcmread(io.BytesIO(datas[0])).StudyInstanceUID)
    with serving(_node_app(make_app, max_study_instances=3)) as client:
        statuses = send_study(_port(client), datasets_of(datas))
        assert statuses == [0, 0, 0] + [OVER_LIMIT] * (len(datas) - 3)
        (kept,) = wait_for(lambda: _kept(client, study), what="the SR of the acknowledged instances")
        assert _evidence(pydicom.dcmread(io.BytesIO(kept.data))) == {str(ds.SOPInstanceUID) for ds in datasets_of(datas[:3])}
        wait_for(lambda: client.app.state.collector.pending_bytes == 0, what="its memory freed")
        assert echo(_port(client)) == 0


def test_the_default_study_limits_take_a_clinical_ct_study():
    """2000 slices of 512 x 512 (16-bit) are 1000 MiB encoded; the node used to stop near 170."""
    from service.http.settings import load_settings

    settings = load_settings()
    assert settings.max_study_instances >= 2000
    assert settings.max_study_bytes >= 2000 * (512 * 512 * 2 + 4096)
    assert settings.max_pending_bytes >= settings.max_study_bytes


def test_memory_bound_refuses_for_now_and_keeps_what_was_acknowledged(make_app, series_uploads):
    """Held memory counts the encoded instances only; over it, A700 (retry later), and the
    instances already acknowledged stay and are analysed."""
    datas = [data for _, data in series_uploads]
    room = 2.5 * len(datas[0]) / 2**20
    study = str(pydicom.dcmread(io.BytesIO(datas[0])).StudyInstanceUID)
    with serving(_node_app(make_app, max_pending_mib=room, max_study_mib=room)) as client:
        statuses = send_study(_port(client), datasets_of(datas))
        assert statuses == [0, 0] + [OUT_OF_RESOURCES] * (len(datas) - 2)
        (kept,) = wait_for(lambda: _kept(client, study), what="the SR of the acknowledged instances")
        assert _evidence(pydicom.dcmread(io.BytesIO(kept.data))) == {str(ds.SOPInstanceUID) for ds in datasets_of(datas[:2])}
        assert echo(_port(client)) == 0


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00" * 10,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x01\x00\x00\x00\xff\xff\xff\xff" + b"\x00" * 64,  # A-ASSOCIATE-RQ claiming 4 GiB
        b"\x01\x00\x00\x00\x00\x00\x00\x10" + b"\xff" * 16,  # an A-ASSOCIATE-RQ of nonsense
        b"\x04\x00\x00\x00\x00\x10" + b"\x00" * 16,  # P-DATA before any association
    ],
    ids=["zeros", "http", "huge-length", "nonsense-rq", "pdata-first"],
)
def test_malformed_pdus_are_dropped_and_the_node_lives_on(make_app, garbage):
    with serving(_node_app(make_app, dicom_timeout_s=3)) as client:
        port = _port(client)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(garbage)
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(10)
            try:
                while sock.recv(4096):
                    pass
            except (ConnectionResetError, TimeoutError):
                pass
        assert echo(port) == 0x0000


def test_srs_reach_a_pacs_that_comes_up_later(make_app, series_uploads):
    """Delivery by C-STORE, retried with backoff while the destination is down; visible in /metrics."""
    datas = [data for _, data in series_uploads[:3]]
    pacs_port = free_port()
    settings = {
        "sr_destination_ae_title": "PACS", "sr_destination_host": "127.0.0.1", "sr_destination_port": pacs_port,
        "delivery_retry_initial_s": 0.2, "delivery_retry_max_s": 0.5,
    }
    with serving(_node_app(make_app, **settings)) as client:
        assert send_study(_port(client), datasets_of(datas)) == [0, 0, 0]
        wait_for(lambda: _metric(client, 'fsd_sr_deliveries_total{destination="dimse",outcome="failed"}') >= 2,
                 what="failed delivery attempts")
        assert _metric(client, "fsd_sr_delivery_pending") == 1
        with storage_scp(pacs_port) as pacs:
            (sr,) = wait_for(lambda: list(pacs.received), what="the SR at the PACS")
            assert sr.Modality == "SR" and _evidence(sr) == {str(ds.SOPInstanceUID) for ds in datasets_of(datas)}
            wait_for(lambda: _metric(client, "fsd_sr_delivery_pending") == 0, what="an empty delivery queue")
            assert _metric(client, 'fsd_sr_deliveries_total{destination="dimse",outcome="delivered"}') == 1


def test_a_full_delivery_queue_refuses_new_studies_instead_of_dropping_findings(make_app, series_uploads):
    from service_helpers import stow_request

    datas = [data for _, data in series_uploads[:2]]
    down = free_port()  # nothing listens there: every delivery fails and is retried
    settings = {
        "sr_destination_ae_title": "PACS", "sr_destination_host": "127.0.0.1", "sr_destination_port": down,
        "delivery_max_queue": 1, "delivery_retry_initial_s": 5,
    }
    with serving(_node_app(make_app, **settings)) as client:
        body, content_type = stow_request(datas[:1])
        first = client.post("/v1/studies", content=body, headers={**AUTH, "Content-Type": content_type})
        assert first.status_code == 200
        wait_for(lambda: client.app.state.delivery.pending == 1, what="the SR waiting for delivery")
        body, content_type = stow_request(datas[1:])
        second = client.post("/v1/studies", content=body, headers={**AUTH, "Content-Type": content_type})
        assert second.status_code == 503 and second.json()["error"]["code"] == "delivery_backlog"
        assert "Retry-After" in second.headers
        assert send_study(_port(client), datasets_of(datas[1:])) == [OUT_OF_RESOURCES]
        assert client.app.state.delivery.pending == 1, "the waiting SR is kept, not dropped"


def test_delivery_backoff_doubles_up_to_its_cap():
    from service.common.metrics import ServiceMetrics
    from service.delivery.queue import DeliveryQueue
    from service.delivery.store_scu import DimseDestination

    destination = DimseDestination(called_ae_title="PACS", host="127.0.0.1", port=1, calling_ae_title="FSD", timeout_s=1)
    queue = DeliveryQueue(destination, max_queue=10, initial_s=2, max_s=30, metrics=ServiceMetrics())
    assert [queue.backoff_s(attempts) for attempts in range(1, 7)] == [2, 4, 8, 16, 30, 30]


def test_shutdown_aborts_open_associations_before_analysing_what_they_sent(make_app, series_uploads):
    """An association still open at shutdown used to go on being answered 0000 into a collector
    nobody drained, while its study was analysed in part; now it is aborted first, and what it
    had sent is analysed."""
    import threading
    from contextlib import ExitStack

    from dicom_helpers import sender_ae

    datasets = datasets_of([data for _, data in series_uploads])
    study = str(datasets[0].StudyInstanceUID)
    stack = ExitStack()
    client = stack.enter_context(serving(_node_app(make_app)))
    state = client.app.state
    association = sender_ae("TESTSCU").associate("127.0.0.1", _port(client), ae_title="FSD")
    try:
        assert association.is_established
        assert [int(association.send_c_store(ds).Status) for ds in datasets[:2]] == [0, 0]
        stopping = threading.Thread(target=stack.close)
        stopping.start()
        wait_for(lambda: not association.is_established, timeout_s=20, what="the association aborted by the stopping node")
        stopping.join(timeout=60)
        assert not stopping.is_alive()
    finally:
        if association.is_established:
            association.abort()
        stack.close()
    assert association.is_aborted
    (kept,) = state.sr_store.find(study)
    assert _evidence(pydicom.dcmread(io.BytesIO(kept.data))) == {str(ds.SOPInstanceUID) for ds in datasets[:2]}
    assert state.collector.closed and state.collector.pending_bytes == 0
