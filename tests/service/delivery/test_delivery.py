"""SR delivery against real peers (a pynetdicom Storage SCP, another FSD server over HTTP):
transient failures are retried, refusals that cannot change are dead-lettered (kept for WADO-RS,
counted, logged) so they neither loop nor fill the queue, and the C-STORE client never leaves an
association open."""

from __future__ import annotations

import dataclasses
import io
import logging
import subprocess
import time
from pathlib import Path

import pydicom
import pytest
from dicom_helpers import free_port, storage_scp, wait_for
from service_helpers import API_KEY, AUTH, live_server, metric, serving, stow_request

from service.delivery.sr_store import describe_sr
from service.delivery.store_scu import DimseDestination

RETRY = {"delivery_retry_initial_s": 0.2, "delivery_retry_max_s": 0.4}
DEAD = 'fsd_sr_deliveries_total{destination="%s",outcome="dead_lettered"}'
FAILED = 'fsd_sr_deliveries_total{destination="%s",outcome="failed"}'


def _pacs(port: int, ae_title: str = "PACS") -> dict[str, object]:
    return {"sr_destination_ae_title": ae_title, "sr_destination_host": "127.0.0.1", "sr_destination_port": port}


def _store(client, data: bytes) -> str:
    """STOW-RS one instance; its StudyInstanceUID."""
    body, content_type = stow_request([data])
    response = client.post("/v1/studies", content=body, headers={**AUTH, "Content-Type": content_type})
    assert response.status_code == 200, response.text
    return str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).StudyInstanceUID)


def _study_copy(data: bytes) -> bytes:
    """``data`` as an instance of a new study."""
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.StudyInstanceUID = pydicom.uid.generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_a_permanent_c_store_refusal_is_dead_lettered_and_cannot_fill_the_queue(make_app, series_uploads, caplog):
    caplog.set_level(logging.INFO, logger="fsd")
    port = free_port()
    app = make_app(**_pacs(port), **RETRY, delivery_max_queue=1)
    with storage_scp(port, status=0xA900) as pacs, serving(app) as client:
        study = _store(client, series_uploads[0][1])
        wait_for(lambda: metric(client, DEAD % "dimse") == 1, what="the SR dead-lettered")
        time.sleep(1.0)  # several retry periods
        assert pacs.attempts == 1, "a permanent refusal is not retried"
        assert metric(client, "fsd_sr_delivery_pending") == 0 and metric(client, FAILED % "dimse") == 0
        assert client.get(f"/v1/studies/{study}", headers=AUTH).status_code == 200, "still retrievable by WADO-RS"
        _store(client, _study_copy(series_uploads[1][1]))  # the queue (max 1) is not full of refusals
        wait_for(lambda: metric(client, DEAD % "dimse") == 2, what="the second SR dead-lettered")
    assert "refused for good" in caplog.text and "0xA900" in caplog.text


def test_a_transient_c_store_refusal_is_retried(make_app, series_uploads):
    port = free_port()
    with storage_scp(port, status=0xA700) as pacs, serving(make_app(**_pacs(port), **RETRY)) as client:
        _store(client, series_uploads[0][1])
        wait_for(lambda: pacs.attempts >= 3, what="retried deliveries")
        assert metric(client, "fsd_sr_delivery_pending") == 1 and metric(client, DEAD % "dimse") == 0
        pacs.status = 0x0000
        wait_for(lambda: pacs.received, what="the SR at the PACS once it has room")
        wait_for(lambda: metric(client, "fsd_sr_delivery_pending") == 0, what="an empty queue")


def test_a_permanently_rejected_association_is_dead_lettered(make_app, series_uploads):
    port = free_port()
    app = make_app(**_pacs(port, ae_title="NOT_THE_PACS"), **RETRY)
    with storage_scp(port, require_called_aet=True) as pacs, serving(app) as client:
        _store(client, series_uploads[0][1])
        wait_for(lambda: metric(client, DEAD % "dimse") == 1, what="the SR dead-lettered")
        assert pacs.attempts == 0 and metric(client, "fsd_sr_delivery_pending") == 0


@pytest.mark.parametrize(
    ("authorization", "refusal"),
    [(f"Bearer {API_KEY}", "FailureReason 0x0122"), ("Bearer wrong-key-0123456789", "HTTP 401")],
    ids=["409-not-ct", "401-wrong-key"],
)
def test_stow_refusals_that_cannot_change_are_dead_lettered(make_app, series_uploads, caplog, authorization, refusal):
    """The peer is another FSD server: it refuses an SR (not CT) with 409 and FailureReason 0122,
    and a wrong key with 401."""
    caplog.set_level(logging.INFO, logger="fsd")
    with live_server(make_app()) as peer:
        app = make_app(sr_destination_stow_url=f"{peer}/v1", sr_destination_authorization=authorization, **RETRY)
        with serving(app) as client:
            _store(client, series_uploads[0][1])
            wait_for(lambda: metric(client, DEAD % "stow") == 1, what="the SR dead-lettered")
            time.sleep(0.8)
            assert metric(client, FAILED % "stow") == 0 and metric(client, "fsd_sr_delivery_pending") == 0
    assert refusal in caplog.text


def test_the_c_store_client_releases_its_association_whatever_fails(client, series_uploads):
    sr = client.post(
        "/v1/detect", files=[("files", ("a.dcm", series_uploads[0][1], "application/dicom"))],
        headers={**AUTH, "Accept": "application/dicom"},
    )
    kept = describe_sr(sr.content)
    ds = pydicom.dcmread(io.BytesIO(sr.content))
    del ds.SOPInstanceUID  # pynetdicom's send_c_store raises AttributeError on it
    port = free_port()
    destination = DimseDestination(called_ae_title="PACS", host="127.0.0.1", port=port, calling_ae_title="FSD", timeout_s=30)
    with storage_scp(port) as pacs:
        with pytest.raises(AttributeError):
            destination.send(dataclasses.replace(kept, dataset=ds))
        wait_for(lambda: pacs.open_associations == 0, timeout_s=5, what="the association released")


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made with openssl (its own CA)."""
    from pacs_helpers import program, require_tools

    require_tools("openssl")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [program("openssl") or "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


@pytest.mark.parametrize("trusted", [True, False], ids=["ca-bundle", "system-cas"])
def test_stow_over_https_trusts_the_configured_ca_bundle(make_app, series_uploads, caplog, self_signed, trusted):
    """The peer is another FSD server behind TLS with a private certificate: with the CA bundle the
    SR reaches it (and is refused there, 409 0122: FSD takes CT only); without it, TLS fails and
    the delivery is retried."""
    caplog.set_level(logging.INFO, logger="fsd")
    with live_server(make_app(), tls=self_signed) as peer:
        assert peer.startswith("https://")
        extra = {"sr_destination_ca_bundle": self_signed[0]} if trusted else {}
        app = make_app(sr_destination_stow_url=f"{peer}/v1", sr_destination_authorization=f"Bearer {API_KEY}", **RETRY, **extra)
        with serving(app) as client:
            _store(client, series_uploads[0][1])
            if trusted:
                wait_for(lambda: metric(client, DEAD % "stow") == 1, what="the SR refused by the peer")
            else:
                wait_for(lambda: metric(client, FAILED % "stow") >= 2, what="failed TLS handshakes")
                assert metric(client, "fsd_sr_delivery_pending") == 1
    assert ("FailureReason 0x0122" in caplog.text) == trusted
    assert ("ConnectError" in caplog.text) != trusted


def test_srs_waiting_at_shutdown_are_sent_after_a_restart_with_a_spool(make_app, series_uploads, tmp_path):
    spool = tmp_path / "spool"
    port = free_port()
    settings = {**_pacs(port), **RETRY, "sr_spool_dir": spool}
    with serving(make_app(**settings)) as client:  # the PACS is down
        study = _store(client, series_uploads[0][1])
        wait_for(lambda: metric(client, FAILED % "dimse") >= 1, what="a failed delivery")
    (spooled,) = spool.iterdir()
    assert pydicom.dcmread(spooled).Modality == "SR", "only the service's SRs are spooled, never images"
    assert spooled.stat().st_mode & 0o777 == 0o600 and spool.stat().st_mode & 0o777 == 0o700
    with storage_scp(port) as pacs, serving(make_app(**settings)) as client:  # restarted, and the PACS is up
        (sr,) = wait_for(lambda: list(pacs.received), what="the SR at the PACS after the restart")
        assert sr.StudyInstanceUID == study
        wait_for(lambda: not list(spool.iterdir()), what="an empty spool")
        assert client.get(f"/v1/studies/{study}", headers=AUTH).status_code == 200, "served by WADO-RS again"


def test_without_a_spool_srs_waiting_at_shutdown_are_logged_as_lost(make_app, series_uploads, caplog):
    caplog.set_level(logging.INFO, logger="fsd")
    with serving(make_app(**_pacs(free_port()), **RETRY)) as client:
        _store(client, series_uploads[0][1])
        wait_for(lambda: metric(client, FAILED % "dimse") >= 1, what="a failed delivery")
    assert "not delivered" in caplog.text and "lost (no sr_spool_dir)" in caplog.text
