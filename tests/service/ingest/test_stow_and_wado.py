"""STOW-RS answered with the PS3.18 store response as soon as the instances are accepted (the
analysis follows in the background, one SR per study however many requests brought it), and
WADO-RS of the service's own SRs.

The store response is parsed as a DICOM JSON data set, exactly as dicomweb-client does it.
"""

from __future__ import annotations

import dataclasses
import io
import time

import highdicom as hd
import pydicom
import pytest
from dicom_helpers import sr_evidence as _evidence
from pydicom import Dataset
from service_helpers import AUTH, SlowModule, metric, serving, stow_request, wait_for_sr

from service.common.multipart import parse_multipart
from service.delivery.sr_store import SRStore, describe_sr

STORE = "application/dicom+json"


def _post(client, datas, path="/v1/studies", **headers):
    body, content_type = stow_request(datas)
    return client.post(path, content=body, headers={**AUTH, "Content-Type": content_type, **headers})


def _uids(data: bytes) -> tuple[str, str, str]:
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def _store_response(response) -> Dataset:
    assert response.headers["content-type"] == STORE, response.text[:300]
    return Dataset.from_json(response.json())


def _path(url: str) -> str:
    return url.removeprefix("http://testserver")


def _sr_parts(response) -> list[Dataset]:
    from service.common.multipart import boundary_of, parse_header_value

    media_type = parse_header_value("content-type", response.headers["content-type"])
    assert media_type.essence == "multipart/related" and media_type.params["type"] == "application/dicom"
    return [pydicom.dcmread(io.BytesIO(part.content)) for part in parse_multipart(response.content, boundary_of(media_type))]


def _with(data: bytes, **changes: object) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_stored_study_gets_a_store_response_and_its_sr_is_retrievable(client, series_uploads):
    datas = [data for _, data in series_uploads]
    response = _post(client, datas)
    assert response.status_code == 200
    answer = _store_response(response)
    study, series, _ = _uids(datas[0])
    assert answer.RetrieveURL == f"http://testserver/v1/studies/{study}"
    assert "FailedSOPSequence" not in answer
    referenced = answer.ReferencedSOPSequence
    assert [item.ReferencedSOPInstanceUID for item in referenced] == [_uids(data)[2] for data in datas]
    for item in referenced:
        assert item.ReferencedSOPClassUID == pydicom.uid.CTImageStorage
        assert "RetrieveURL" not in item, "uploaded images are never kept, so there is nothing to retrieve per instance"

    retrieved = wait_for_sr(client, study)
    assert _path(answer.RetrieveURL) == f"/v1/studies/{study}"
    (sr,) = _sr_parts(retrieved)
    assert sr.Modality == "SR" and sr.StudyInstanceUID == study and sr.SeriesInstanceUID != series
    evidence = {
        item.ReferencedSOPInstanceUID
        for entry in sr.CurrentRequestedProcedureEvidenceSequence
        for ref_series in entry.ReferencedSeriesSequence
        for item in ref_series.ReferencedSOPSequence
    }
    assert evidence == {_uids(data)[2] for data in datas}
    assert hd.sr.srread(io.BytesIO(retrieved.content[retrieved.content.index(b"\r\n\r\n") + 4 :])).Modality == "SR"
    metadata = client.get(f"{_path(answer.RetrieveURL)}/metadata", headers=AUTH)
    assert metadata.status_code == 200 and metadata.headers["content-type"] == STORE
    (described,) = [Dataset.from_json(item) for item in metadata.json()]
    assert described.SOPInstanceUID == sr.SOPInstanceUID
    one = client.get(f"/v1/studies/{study}/series/{sr.SeriesInstanceUID}/instances/{sr.SOPInstanceUID}", headers=AUTH)
    assert [part.SOPInstanceUID for part in _sr_parts(one)] == [sr.SOPInstanceUID]


def test_refused_instances_are_listed_with_their_failure_reason_and_202(client, series_uploads, ct_small_bytes):
    good = [data for _, data in series_uploads[:2]]
    mr = _with(good[0], Modality="MR", SOPClassUID=pydicom.uid.MRImageStorage, SOPInstanceUID=pydicom.uid.generate_uid())
    truncated = _with(good[1], SOPInstanceUID=pydicom.uid.generate_uid())[:-300]
    response = _post(client, [*good, mr, b"not dicom at all", truncated, good[0]])
    assert response.status_code == 202
    answer = _store_response(response)
    assert len(answer.ReferencedSOPSequence) == 2
    reasons = [item.FailureReason for item in answer.FailedSOPSequence]
    assert reasons == [0x0122, 0xC000, 0xA900, 0x0111]
    assert answer.FailedSOPSequence[0].ReferencedSOPInstanceUID == _uids(mr)[2]
    assert "ReferencedSOPInstanceUID" not in answer.FailedSOPSequence[1]


def test_nothing_stored_is_409_with_the_store_response(client, series_uploads):
    mr = _with(series_uploads[0][1], Modality="MR", SOPClassUID=pydicom.uid.MRImageStorage)
    response = _post(client, [mr])
    assert response.status_code == 409
    answer = _store_response(response)
    assert "ReferencedSOPSequence" not in answer and answer.FailedSOPSequence[0].FailureReason == 0x0122


def test_study_in_the_url_refuses_instances_of_other_studies(client, series_uploads, ct_small_bytes):
    data = series_uploads[0][1]
    study = _uids(data)[0]
    response = _post(client, [data, ct_small_bytes], path=f"/v1/studies/{study}")
    assert response.status_code == 202
    answer = _store_response(response)
    assert answer.RetrieveURL.endswith(f"/v1/studies/{study}")
    assert [item.ReferencedSOPInstanceUID for item in answer.ReferencedSOPSequence] == [_uids(data)[2]]
    assert answer.FailedSOPSequence[0].FailureReason == 0xA900
    bad = _post(client, [data], path="/v1/studies/not-a-uid")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_uid"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/dicom+json", STORE),
        ("*/*", STORE),
        ("application/dicom+json, application/json;q=0.5", STORE),
        ("application/json", "application/json"),
        ("application/dicom", "application/dicom"),
    ],
)
def test_accept_chooses_the_answer(client, series_uploads, accept, expected):
    response = _post(client, [series_uploads[0][1]], Accept=accept)
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"] == expected


def test_an_unacceptable_accept_is_406(client, series_uploads):
    response = _post(client, [series_uploads[0][1]], Accept="text/html")
    assert response.status_code == 406 and response.json()["error"]["code"] == "not_acceptable"
    study = _uids(series_uploads[0][1])[0]
    only_store = _post(client, [series_uploads[0][1]], path=f"/v1/studies/{study}", Accept="application/dicom")
    assert only_store.status_code == 406


def test_chunked_upload_is_stored(client, series_uploads):
    body, content_type = stow_request([data for _, data in series_uploads])

    def chunks():
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    response = client.post("/v1/studies", content=chunks(), headers={**AUTH, "Content-Type": content_type})
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert response.status_code == 200
    assert len(_store_response(response).ReferencedSOPSequence) == len(series_uploads)


def test_chunked_upload_over_the_limit_is_413(make_app, series_uploads):
    body, content_type = stow_request([data for _, data in series_uploads])
    with serving(make_app(max_request_mib=len(body) / 2 / 2**20)) as client:
        response = client.post(
            "/v1/studies", content=iter([body[: len(body) // 2], body[len(body) // 2 :]]),
            headers={**AUTH, "Content-Type": content_type},
        )
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"


def test_uploaded_images_are_not_kept(client, series_uploads):
    data = series_uploads[0][1]
    answer = _store_response(_post(client, [data]))
    study, series, sop = _uids(data)
    wait_for_sr(client, study)
    image = client.get(f"/v1/studies/{study}/series/{series}/instances/{sop}", headers=AUTH)
    assert image.status_code == 404 and "never kept" in image.json()["error"]["message"]
    assert client.get(_path(answer.RetrieveURL), headers={**AUTH, "Accept": "image/jpeg"}).status_code == 406
    assert client.get(_path(answer.RetrieveURL)).status_code == 401
    assert client.get("/v1/studies/1.2.3.999999").status_code == 401
    assert client.get("/v1/studies/1.2.3.999999", headers=AUTH).status_code == 404


def test_wado_transcodes_to_implicit_vr_on_request(client, series_uploads):
    answer = _store_response(_post(client, [series_uploads[0][1]]))
    wait_for_sr(client, _uids(series_uploads[0][1])[0])
    accept = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2'
    response = client.get(_path(answer.RetrieveURL), headers={**AUTH, "Accept": accept})
    assert response.status_code == 200 and response.headers["content-type"].endswith("transfer-syntax=1.2.840.10008.1.2")
    (sr,) = _sr_parts(response)
    assert sr.file_meta.TransferSyntaxUID == pydicom.uid.ImplicitVRLittleEndian and sr.Modality == "SR"


def test_kept_srs_are_bounded_in_time_and_memory(client, series_uploads):
    _post(client, [series_uploads[0][1]], Accept="application/dicom")  # makes an SR without keeping it
    sr_bytes = _post(client, [series_uploads[1][1]], Accept="application/dicom").content
    other_bytes = [_post(client, [data], Accept="application/dicom").content for _, data in series_uploads[2:4]]
    now = [0.0]
    first = describe_sr(sr_bytes)
    others = [describe_sr(data) for data in other_bytes]
    # room for the two later SRs, not for all three
    store = SRStore(max_bytes=sum(other.size_bytes for other in others) + 10, keep_s=60, clock=lambda: now[0])
    assert store.keep(first)
    for other in others:
        now[0] += 1
        assert store.keep(other)
    assert store.count == 2 and store.find(first.study_instance_uid, first.series_instance_uid) == []
    now[0] += 61
    assert store.find(others[-1].study_instance_uid) == [] and store.count == 0
    assert not SRStore(max_bytes=10, keep_s=60).keep(first), "an SR over the whole bound is not kept"


def test_the_study_sr_carries_the_strongest_findings_only(make_app, series_uploads):
    datas = [data for _, data in series_uploads]
    with serving(make_app(sr_max_findings=3)) as client:
        _store_response(_post(client, datas))
        (sr,) = _sr_parts(wait_for_sr(client, _uids(datas[0])[0]))
        detected = _post(client, datas, Accept="application/json").json()["results"]
    scores = sorted((d["score"] for r in detected for d in r["detections"]), reverse=True)
    assert len(scores) > 3
    buffer = io.BytesIO()
    sr.save_as(buffer, enforce_file_format=True)
    groups = hd.sr.srread(io.BytesIO(buffer.getvalue())).content.get_planar_roi_measurement_groups()
    kept = sorted(
        (next(m.value for m in g.get_measurements() if m.name.meaning == "Probability") for g in groups), reverse=True
    )
    assert kept == pytest.approx(scores[:3])


def test_the_sr_store_counts_the_metadata_it_keeps_too(client, series_uploads):
    sr = describe_sr(_post(client, [series_uploads[0][1]], Accept="application/dicom").content)
    assert sr.size_bytes > len(sr.data), "the DICOM JSON metadata is held beside the document"
    store = SRStore(max_bytes=len(sr.data) + 16, keep_s=60)
    assert not store.keep(sr), "the document alone fits the bound, the document and its metadata do not"
    roomy = SRStore(max_bytes=10 * sr.size_bytes, keep_s=60)
    assert roomy.keep(sr) and roomy.size_bytes == sr.size_bytes and roomy.count == 1


def test_one_study_sent_over_several_requests_gets_one_sr(make_app, series_uploads):
    """As Orthanc's DICOMweb client sends a study (StowMaxInstances per request) or a router one series at a time."""
    datas = [data for _, data in series_uploads]
    study = _uids(datas[0])[0]
    with serving(make_app(stow_study_quiet_s=1.0)) as client:
        for part in (datas[:2], datas[2:4], datas[4:]):
            assert _post(client, part).status_code == 200
        (sr,) = _sr_parts(wait_for_sr(client, study))
        assert _evidence(sr) == {_uids(data)[2] for data in datas}
        time.sleep(1.5)
        assert len(_sr_parts(client.get(f"/v1/studies/{study}", headers=AUTH))) == 1
        assert metric(client, 'fsd_studies_analysed_total{outcome="analysed",source="stow"}') == 1


def test_the_store_response_does_not_wait_for_the_analysis(make_app, inference_model, series_uploads):
    """A model that is busy (here: held) delays the SR, never the answer to the PACS (Orthanc's HttpTimeout)."""
    module = SlowModule(inference_model.module)
    model = dataclasses.replace(inference_model, module=module)
    study = _uids(series_uploads[0][1])[0]
    with serving(make_app(model=model, warmup_runs=0)) as client:
        started = time.monotonic()
        assert _post(client, [data for _, data in series_uploads]).status_code == 200
        assert time.monotonic() - started < 10, "answered without waiting for the model"
        assert module.entered.wait(timeout=30), "the analysis runs after the answer"
        assert client.get(f"/v1/studies/{study}", headers=AUTH).status_code == 404
        module.release.set()
        wait_for_sr(client, study)


def test_no_room_for_now_is_503_with_retry_after_not_a_failure_reason(make_app, series_uploads):
    datas = [data for _, data in series_uploads]
    room = 1.5 * len(datas[0]) / 2**20  # one instance fits in the memory for received instances
    with serving(make_app(max_pending_mib=room, max_study_mib=room, stow_study_quiet_s=30)) as client:
        assert _post(client, datas[:1]).status_code == 200  # held for 30 s of quiet time
        refused = _post(client, datas[1:2])
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "intake_full"
    assert refused.headers["Retry-After"] == "2"


def test_what_is_over_a_limit_is_refused_for_good_and_the_rest_of_the_study_analysed(make_app, series_uploads):
    datas = [data for _, data in series_uploads]
    with serving(make_app(max_study_instances=3)) as client:
        response = _post(client, datas)
        assert response.status_code == 202
        answer = _store_response(response)
        assert [item.ReferencedSOPInstanceUID for item in answer.ReferencedSOPSequence] == [_uids(d)[2] for d in datas[:3]]
        assert [item.FailureReason for item in answer.FailedSOPSequence] == [0xC001] * (len(datas) - 3)
        (sr,) = _sr_parts(wait_for_sr(client, _uids(datas[0])[0]))
        assert _evidence(sr) == {_uids(data)[2] for data in datas[:3]}, "the accepted instances are analysed"
    with serving(make_app(max_pixel_mib_per_file=0.001)) as client:
        answer = _store_response(_post(client, datas[:1]))
        assert answer.FailedSOPSequence[0].FailureReason == 0xC001, "over the pixel budget: not A700, which invites a retry"
