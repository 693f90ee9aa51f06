"""No patient data in logs, and uploads never touch the disk."""

from __future__ import annotations

import io
import logging
import tempfile
import warnings

import pydicom
import pytest
from service_helpers import AUTH, form_files, stow_request

from fsd.io.dicom import hash_uid
from service.http.log_config import protect_library_logs

PATIENT_NAME = "Zebulonovich^Quintessa"
PATIENT_ID = "PID-4417-UNIQUE-93"
BIRTH_DATE = "19230817"


def _with_identity(data: bytes, **changes: object) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = BIRTH_DATE
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_patient_identity_and_raw_uids_never_reach_the_logs(client, series_uploads, caplog):
    caplog.set_level(logging.DEBUG)
    uploads = [(name, _with_identity(data)) for name, data in series_uploads[:2]]
    assert client.post("/v1/detect", files=form_files(uploads), headers=AUTH).status_code == 200
    sr = client.post("/v1/detect", files=form_files(uploads), headers={**AUTH, "Accept": "application/dicom"})
    assert sr.status_code == 200 and PATIENT_NAME.encode() in sr.content, "the SR itself carries the patient"
    body, content_type = stow_request([data for _, data in uploads])
    assert client.post("/v1/studies", content=body, headers={**AUTH, "Content-Type": content_type}).status_code == 200
    # rejected inputs are logged too: not CT, and truncated
    not_ct = _with_identity(uploads[0][1], Modality="MR", SOPClassUID=pydicom.uid.MRImageStorage)
    assert client.post("/v1/detect", files=form_files([("mr.dcm", not_ct)]), headers=AUTH).status_code == 422
    truncated = uploads[0][1][:-500]
    assert client.post("/v1/detect", files=form_files([("cut.dcm", truncated)]), headers=AUTH).status_code == 422

    logged = caplog.text
    assert "detected" in logged, "the request summary was logged (so the check below means something)"
    series_uid = str(pydicom.dcmread(io.BytesIO(uploads[0][1])).SeriesInstanceUID)
    sop_uid = str(pydicom.dcmread(io.BytesIO(uploads[0][1])).SOPInstanceUID)
    for secret in (PATIENT_NAME, "Zebulonovich", "Quintessa", PATIENT_ID, BIRTH_DATE, series_uid, sop_uid):
        assert secret not in logged, f"{secret!r} leaked into the logs"
    assert hash_uid(series_uid) in logged


def test_uploads_are_never_written_to_disk(client, ct_small_bytes, tmp_path, monkeypatch):
    """Even multi-megabyte uploads (which python-multipart would spool to a temporary file)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("an upload was about to be written to a temporary file")

    for name in ("SpooledTemporaryFile", "NamedTemporaryFile", "TemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, forbidden)
    import starlette.datastructures
    import starlette.formparsers

    for module in (starlette.formparsers, starlette.datastructures):
        if hasattr(module, "SpooledTemporaryFile"):
            monkeypatch.setattr(module, "SpooledTemporaryFile", forbidden)

    ds = pydicom.dcmread(io.BytesIO(ct_small_bytes))
    pixels = ds.pixel_array.repeat(4, axis=0).repeat(4, axis=1)
    ds.Rows = ds.Columns = 512
    ds.PixelData = pixels.tobytes()
    uploads = []
    for index in range(3):  # 3 x 512 KiB of pixels, over Starlette's 1 MiB spooling threshold
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.ImagePositionPatient = [0.0, 0.0, float(index * 5)]
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        uploads.append((f"big{index}.dcm", buffer.getvalue()))
    assert sum(len(data) for _, data in uploads) > 1.5 * 2**20
    response = client.post("/v1/detect", files=form_files(uploads), headers=AUTH)
    assert response.status_code == 200 and len(response.json()["results"]) == 3
    body, content_type = stow_request([data for _, data in uploads])
    assert client.post("/v1/studies", content=body, headers={**AUTH, "Content-Type": content_type}).status_code == 200
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("route", ["/v1/detect", "/v1/studies"])
def test_error_messages_do_not_echo_patient_data(client, series_uploads, route):
    data = _with_identity(series_uploads[0][1], Modality="MR", SOPClassUID=pydicom.uid.MRImageStorage)
    if route == "/v1/detect":
        response = client.post(route, files=form_files([("x.dcm", data)]), headers=AUTH)
    else:
        body, content_type = stow_request([data])
        headers = {**AUTH, "Content-Type": content_type, "Accept": "application/json"}  # the detect-style answer
        response = client.post(route, content=body, headers=headers)
    assert response.status_code == 422
    assert PATIENT_NAME not in response.text and PATIENT_ID not in response.text


@pytest.mark.parametrize(
    "odd_name",
    ["Zebulonovich^Quintessa^^^^^Extra=Comp=Onents", "Zebulonovich Quintessa"],
    ids=["too-many-components", "single-component"],
)
def test_malformed_patient_values_are_withheld_from_library_logs_and_warnings(client, series_uploads, caplog, odd_name):
    """pydicom and highdicom quote odd values in their messages; the service withholds them."""
    caplog.set_level(logging.DEBUG)
    data = _with_identity(series_uploads[0][1], PatientBirthDate="1923-08-17", PatientName=odd_name)
    with warnings.catch_warnings(record=True) as shown_warnings:
        warnings.simplefilter("default")
        protect_library_logs()  # as create_app does at start-up (pytest resets warning filters per test)
        headers = {**AUTH, "Accept": "application/dicom"}
        response = client.post("/v1/detect", files=form_files([("odd.dcm", data)]), headers=headers)
    assert response.status_code == 200
    assert "Invalid value for VR DA: '<withheld>'" in caplog.text, "the record is kept, its value withheld"
    assert shown_warnings == [] or all("Zebulonovich" not in str(w.message) for w in shown_warnings)
    shown = caplog.text + "".join(str(warning.message) for warning in shown_warnings)
    for secret in ("1923-08-17", "Zebulonovich", "Quintessa"):
        assert secret not in shown


def test_quoted_values_are_withheld_from_pydicom_records():
    from service.http.log_config import WithholdQuotedValues

    record = logging.LogRecord("pydicom", logging.WARNING, __file__, 1, "Invalid value for VR %s: %r", ("PN", "Doe^John"), None)
    assert WithholdQuotedValues().filter(record)
    assert record.getMessage() == "Invalid value for VR PN: '<withheld>'"


def test_the_dicom_node_and_stow_keep_patient_identity_out_of_the_logs(make_app, series_uploads, caplog, tmp_path, monkeypatch):
    """C-STORE (accepted and refused), STOW-RS store responses and SR delivery: no PHI in any log,
    and nothing written to disk on the way."""
    from dicom_helpers import datasets_of, free_port, send_study, storage_scp, wait_for

    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    datas = [_with_identity(data) for _, data in series_uploads[:3]]
    refused = _with_identity(series_uploads[3][1], Modality="MR")
    pacs_port = free_port()
    app = make_app(
        dicom_enabled=True, dicom_port=0, dicom_allowed_calling_ae_titles=["TESTSCU"],
        sr_destination_ae_title="PACS", sr_destination_host="127.0.0.1", sr_destination_port=pacs_port,
        delivery_retry_initial_s=0.2, delivery_retry_max_s=0.5,
    )
    from service_helpers import serving

    with serving(app) as client, storage_scp(pacs_port) as pacs:
        port = client.app.state.dicom_node.port
        assert send_study(port, datasets_of([*datas, refused])) == [0, 0, 0, 0x0122]
        wait_for(lambda: pacs.received, what="the DIMSE study's SR")  # so the STOW-RS copy is a study of its own
        body, content_type = stow_request([*datas, refused])
        stow = client.post("/v1/studies", content=body, headers={**AUTH, "Content-Type": content_type})
        assert stow.status_code == 202
        assert PATIENT_NAME not in stow.text and PATIENT_ID not in stow.text, "the store response carries no PHI"
        received = wait_for(lambda: len(pacs.received) >= 2 and list(pacs.received), what="both SRs at the PACS")
        assert str(received[0].PatientName) == PATIENT_NAME, "the SR itself carries the patient"
    logged = caplog.text
    assert "study" in logged and "delivered SR" in logged, "the node and the delivery logged (so the check means something)"
    for secret in (PATIENT_NAME, "Zebulonovich", "Quintessa", PATIENT_ID, BIRTH_DATE):
        assert secret not in logged, f"{secret!r} leaked into the logs"
    ds = pydicom.dcmread(io.BytesIO(datas[0]))
    for uid in (str(ds.StudyInstanceUID), str(ds.SOPInstanceUID)):
        assert uid not in logged, "raw UIDs stay out of the logs"
    assert list(tmp_path.iterdir()) == []


def test_a_real_server_logs_no_raw_uid_of_the_dicomweb_paths(make_app, series_uploads, capfd, caplog):
    """uvicorn, configured as `fsd serve` configures it, would write every request path (with the
    Study, Series and SOP Instance UIDs of the DICOMweb routes) to its access log."""
    import httpx
    from service_helpers import live_server

    caplog.set_level(logging.DEBUG)
    ds = pydicom.dcmread(io.BytesIO(series_uploads[0][1]), stop_before_pixels=True)
    study, series, sop = str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)
    app = make_app()
    assert app.state.settings.log_level == "info", "the default level, at which uvicorn writes its access log"
    with live_server(app) as base, httpx.Client(base_url=base, headers=AUTH, timeout=60) as client:
        body, content_type = stow_request([series_uploads[0][1]])
        assert client.post(f"/v1/studies/{study}", content=body, headers={"Content-Type": content_type}).status_code == 200
        for path in (f"/v1/studies/{study}", f"/v1/studies/{study}/series/{series}/instances/{sop}/metadata"):
            assert client.get(path).status_code in (200, 404)
    captured = capfd.readouterr()
    server_records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]  # not the client's
    logged = captured.out + captured.err + "\n".join(f"{r.name}: {r.getMessage()}" for r in server_records)
    assert "Uvicorn running" in logged or "Application startup complete" in logged, "uvicorn's own log was captured"
    for uid in (study, series, sop):
        assert uid not in logged, "a raw UID reached a log"
