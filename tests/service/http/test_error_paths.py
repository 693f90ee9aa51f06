"""Every bad request gets a JSON 4xx in the error envelope, with a stable code, never a 500."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from service_helpers import AUTH, form_files, serving, stow_request


def _envelope(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]["message"]


def _bundled(name: str) -> bytes:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not bundled with this pydicom")
    return Path(path).read_bytes()


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("MR_small.dcm", 422, "not_ct"),
        ("rtplan.dcm", 422, "not_ct"),
        ("MR_truncated.dcm", 422, "not_ct"),
    ],
)
def test_non_ct_dicom_is_422_with_its_code(client, name, status, code):
    response = client.post("/v1/detect", files=form_files([(name, _bundled(name))]), headers=AUTH)
    message = _envelope(response, status, code)
    assert message.startswith(f"file 1 ({name}): ")


def test_random_bytes_are_400_not_dicom(client):
    _envelope(client.post("/v1/detect", files=form_files([("x.dcm", b"hello world")]), headers=AUTH), 400, "not_dicom")


def test_empty_file_is_400_not_dicom(client):
    _envelope(client.post("/v1/detect", files=form_files([("x.dcm", b"")]), headers=AUTH), 400, "not_dicom")


def test_truncated_ct_is_422_truncated(client, ct_small_bytes):
    cut = ct_small_bytes[: len(ct_small_bytes) - 1000]
    _envelope(client.post("/v1/detect", files=form_files([("cut.dcm", cut)]), headers=AUTH), 422, "truncated")


def test_one_bad_file_fails_the_request_and_names_it(client, series_uploads):
    uploads = [*series_uploads[:2], ("third.dcm", b"not dicom")]
    message = _envelope(client.post("/v1/detect", files=form_files(uploads), headers=AUTH), 400, "not_dicom")
    assert message.startswith("file 3 (third.dcm): ")


def test_pixel_budget_is_413_too_large(make_app, ct_small_bytes):
    with serving(make_app(max_pixel_mib_per_file=0.01)) as client:
        response = client.post("/v1/detect", files=form_files([("ct.dcm", ct_small_bytes)]), headers=AUTH)
    _envelope(response, 413, "too_large")


def test_unsupported_transfer_syntax_is_415(client, ct_small_bytes):
    ds = pydicom.dcmread(io.BytesIO(ct_small_bytes))
    ds.file_meta.TransferSyntaxUID = pydicom.uid.JPEGLSLossless  # no license-clean decoder installed
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8" + b"\x00" * 64 + b"\xff\xd9"])
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    response = client.post("/v1/detect", files=form_files([("jls.dcm", buffer.getvalue())]), headers=AUTH)
    _envelope(response, 415, "unsupported_transfer_syntax")


def test_duplicate_instances_are_422(client, series_uploads):
    uploads = [series_uploads[0], ("again.dcm", series_uploads[0][1])]
    message = _envelope(client.post("/v1/detect", files=form_files(uploads), headers=AUTH), 422, "duplicate_instance")
    assert "again.dcm" in message


def test_detect_needs_multipart_form_data(client):
    response = client.post("/v1/detect", content=b"{}", headers={**AUTH, "Content-Type": "application/json"})
    _envelope(response, 415, "unsupported_media_type")


def test_form_without_files_field_is_422(client):
    response = client.post("/v1/detect", data={"other": "value"}, files=[("file", ("a.dcm", b"x"))], headers=AUTH)
    _envelope(response, 422, "no_files")


def test_malformed_multipart_is_400(client):
    headers = {**AUTH, "Content-Type": "multipart/form-data; boundary=abc"}
    response = client.post("/v1/detect", content=b"--abc\r\nContent-Disposition: form-data; name=files\r\n\r\ndata", headers=headers)
    _envelope(response, 400, "invalid_multipart")
    response = client.post("/v1/detect", content=b"no boundary here", headers={**AUTH, "Content-Type": "multipart/form-data"})
    _envelope(response, 400, "invalid_multipart")


def test_too_many_files_is_413(make_app, series_uploads):
    with serving(make_app(max_files=2)) as client:
        response = client.post("/v1/detect", files=form_files(series_uploads[:3]), headers=AUTH)
    _envelope(response, 413, "too_many_files")


def test_stow_rejects_other_content_types_with_415(client, series_uploads):
    data = series_uploads[0][1]
    _envelope(client.post("/v1/studies", files=form_files([("a.dcm", data)]), headers=AUTH), 415, "unsupported_media_type")
    body, content_type = stow_request([data])
    wrong_type = content_type.replace('type="application/dicom"', 'type="application/dicom+xml"')
    _envelope(
        client.post("/v1/studies", content=body, headers={**AUTH, "Content-Type": wrong_type}), 415, "unsupported_media_type"
    )
    body, content_type = stow_request([data], part_type="application/octet-stream")
    message = _envelope(
        client.post("/v1/studies", content=body, headers={**AUTH, "Content-Type": content_type}), 415, "unsupported_media_type"
    )
    assert "part 1" in message


def test_stow_with_no_parts_is_422(client):
    headers = {**AUTH, "Content-Type": 'multipart/related; type="application/dicom"; boundary=b1'}
    _envelope(client.post("/v1/studies", content=b"--b1--\r\n", headers=headers), 422, "no_files")


def test_accept_header_admitting_neither_format_is_406(client, series_uploads):
    response = client.post("/v1/detect", files=form_files(series_uploads[:1]), headers={**AUTH, "Accept": "text/html"})
    _envelope(response, 406, "not_acceptable")


def test_body_over_the_limit_by_content_length_is_413_before_reading(make_app):
    with serving(make_app(max_request_mib=0.001)) as client:
        def body():
            yield b"x" * 4096

        headers = {**AUTH, "Content-Type": "multipart/form-data; boundary=abc", "Content-Length": "4096"}
        response = client.post("/v1/detect", content=body(), headers=headers)
    _envelope(response, 413, "request_too_large")


def test_body_over_the_limit_without_content_length_is_413_while_streaming(make_app):
    with serving(make_app(max_request_mib=0.01)) as client:
        def chunks():  # chunked transfer encoding: no Content-Length to trust
            for _ in range(100):
                yield b"y" * 1024

        headers = {**AUTH, "Content-Type": "multipart/form-data; boundary=abc"}
        response = client.post("/v1/detect", content=chunks(), headers=headers)
    _envelope(response, 413, "request_too_large")


def test_lying_content_length_does_not_bypass_the_limit():
    """A client that declares a small length but streams more is still cut off at the limit."""
    from service.http.body import read_body
    from service.http.errors import ServiceError

    class FakeRequest:
        headers = {"content-length": "10"}

        async def stream(self):
            for _ in range(10):
                yield b"z" * 1000

    import asyncio

    with pytest.raises(ServiceError) as raised:
        asyncio.run(read_body(FakeRequest(), limit=5000))  # type: ignore[arg-type]
    assert raised.value.status == 413


def test_invalid_content_length_is_400():
    from service.http.body import declared_length
    from service.http.errors import ServiceError

    class FakeRequest:
        headers = {"content-length": "12abc"}

    with pytest.raises(ServiceError) as raised:
        declared_length(FakeRequest())  # type: ignore[arg-type]
    assert raised.value.status == 400


@pytest.mark.parametrize("query", ["min_score=2", "min_score=-0.1", "min_score=abc", "preview=maybe"])
def test_invalid_query_parameters_are_422_in_the_envelope(client, series_uploads, query):
    response = client.post(f"/v1/detect?{query}", files=form_files(series_uploads[:1]), headers=AUTH)
    message = _envelope(response, 422, "invalid_request")
    assert query.split("=")[0] in message


def test_unknown_route_is_404_and_wrong_method_is_405_in_the_envelope(client):
    _envelope(client.get("/v1/nothing-here"), 404, "not_found")
    _envelope(client.get("/v1/detect", headers=AUTH), 405, "method_not_allowed")
    _envelope(client.put("/health/live"), 405, "method_not_allowed")


def test_openapi_documents_every_route_errors_and_examples(client):
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path, method in [
        ("/v1/detect", "post"), ("/v1/studies", "post"), ("/v1/model", "get"), ("/health/live", "get"),
        ("/health/ready", "get"), ("/metrics", "get"), ("/", "get"),
    ]:
        assert method in paths[path], path
        assert paths[path][method]["summary"]
    detect = paths["/v1/detect"]["post"]
    for status in ("400", "401", "413", "415", "422", "503", "504"):
        schema = detect["responses"][status]["content"]["application/json"]["schema"]
        assert schema["$ref"].endswith("/ErrorBody"), status
    assert "multipart/form-data" in detect["requestBody"]["content"]
    assert "multipart/related" in paths["/v1/studies"]["post"]["requestBody"]["content"]
    assert "application/dicom" in detect["responses"]["200"]["content"]
    example = spec["components"]["schemas"]["DetectResponse"]["examples"][0]
    assert example["results"][0]["detections"][0]["type"] == "liver"


def test_an_unexpected_failure_is_a_logged_500_without_its_message(make_app, inference_model, caplog):
    import dataclasses
    import logging

    from fastapi.testclient import TestClient
    from service_helpers import AUTH, wait_ready

    # a card whose metrics cannot be serialised
    broken = dataclasses.replace(inference_model, card=inference_model.card.model_copy(update={"metrics": {"secret-detail": object()}}))
    caplog.set_level(logging.DEBUG)
    with TestClient(make_app(model=broken), raise_server_exceptions=True) as client:
        wait_ready(client)
        response = client.get("/v1/model", headers=AUTH)  # nothing re-raised into the server either
        metrics = client.get("/metrics").text
    _envelope(response, 500, "internal_error")
    assert "unhandled" in caplog.text and "raised at" in caplog.text
    assert "secret-detail" not in caplog.text and "unable to serialize" not in caplog.text.lower()
    assert 'route="/v1/model",status="500"' in metrics
