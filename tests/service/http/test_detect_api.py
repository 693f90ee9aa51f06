"""POST /v1/detect and /v1/studies on a synthetic CT series: results, options, SR, and the offline twin."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import highdicom as hd
import pydicom
import pytest
from PIL import Image
from service_helpers import AUTH, form_files, stow_request

from fsd.cli.predict import predict_files
from service.delivery.sr import LESION_TYPE, LESION_TYPE_PROBABILITY, lesion_type_code
from service.http.schemas import DetectResponse


def _uids(data: bytes) -> tuple[str, str]:
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    return str(ds.SOPInstanceUID), str(ds.SeriesInstanceUID)


def _z(data: bytes) -> float:
    return float(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).ImagePositionPatient[2])


def _text_items(dataset) -> set[tuple[str, str]]:
    """(concept name, text) of every TEXT content item in an SR tree."""
    found = set()
    for item in getattr(dataset, "ContentSequence", []):
        if getattr(item, "ValueType", "") == "TEXT":
            found.add((item.ConceptNameCodeSequence[0].CodeMeaning, item.TextValue))
        found |= _text_items(item)
    return found


def test_series_gets_one_result_per_slice_grouped_and_ordered(client, series_uploads):
    shuffled = series_uploads[::2] + series_uploads[1::2]
    response = client.post("/v1/detect", files=form_files(shuffled), headers=AUTH)
    assert response.status_code == 200, response.text
    body = DetectResponse.model_validate(response.json())
    assert body.model.name == "test" and body.model.version == "0"
    assert set(body.timing_ms) == {"decode", "preprocess", "queue_wait", "model", "response", "total"}
    assert body.timing_ms["model"] > 0 and body.timing_ms["total"] >= body.timing_ms["model"] + body.timing_ms["decode"]
    assert len(body.results) == len(series_uploads)
    by_uid = {_uids(data)[0]: data for _, data in series_uploads}
    assert {result.sop_instance_uid for result in body.results} == set(by_uid)
    series_uid = _uids(series_uploads[0][1])[1]
    assert all(result.series_instance_uid == series_uid and result.frame == 1 for result in body.results)
    positions = [_z(by_uid[result.sop_instance_uid]) for result in body.results]
    assert positions in (sorted(positions), sorted(positions, reverse=True)), "scan-axis order, not upload order"
    assert len(set(positions)) == len(positions)
    # neighbours feed the context: the inner slices read more than themselves
    assert max(result.context_slices for result in body.results) > 1


def test_detections_are_in_the_original_pixel_grid(client, series_uploads):
    response = client.post("/v1/detect?min_score=0", files=form_files(series_uploads[:1]), headers=AUTH)
    result = response.json()["results"][0]
    assert result["detections"], "an untrained detector with score_thresh 0 still proposes boxes"
    spacing = [float(v) for v in pydicom.dcmread(io.BytesIO(series_uploads[0][1])).PixelSpacing]
    for detection in result["detections"]:
        x1, y1, x2, y2 = detection["box_px"]
        assert -1 <= x1 < x2 <= 65 and -1 <= y1 < y2 <= 65, "64 x 64 source image"
        assert detection["box_mm"][0] == pytest.approx(x1 * spacing[1], abs=0.05)
        assert detection["box_mm"][3] == pytest.approx(y2 * spacing[0], abs=0.05)
        assert detection["type"] in detection["type_scores"] and 1 <= detection["type_id"] <= 8
        assert len(detection["center_patient_mm"]) == 3
    scores = [d["score"] for d in result["detections"]]
    assert scores == sorted(scores, reverse=True)


def test_single_slice_falls_back_to_itself_as_context(client, series_uploads):
    result = client.post("/v1/detect", files=form_files(series_uploads[2:3]), headers=AUTH).json()["results"][0]
    assert result["context_slices"] == 1


def test_min_score_filters_detections(client, series_uploads):
    files = form_files(series_uploads[:1])
    everything = client.post("/v1/detect?min_score=0", files=files, headers=AUTH).json()["results"][0]["detections"]
    scores = sorted({d["score"] for d in everything})
    middle = len(scores) // 2
    threshold = (scores[middle - 1] + scores[middle]) / 2  # away from any (rounded) score
    kept = client.post(f"/v1/detect?min_score={threshold}", files=files, headers=AUTH).json()["results"][0]["detections"]
    assert kept == [d for d in everything if d["score"] >= threshold]
    assert 0 < len(kept) < len(everything)


def test_default_min_score_comes_from_settings(make_app, series_uploads):
    from service_helpers import serving

    with serving(make_app(min_score=0.9)) as client:
        detections = client.post("/v1/detect", files=form_files(series_uploads[:1]), headers=AUTH).json()["results"][0]["detections"]
    assert all(d["score"] >= 0.9 for d in detections)


def test_preview_is_a_png_of_the_original_grid(client, series_uploads):
    response = client.post("/v1/detect?preview=true", files=form_files(series_uploads[:1]), headers=AUTH)
    url = response.json()["results"][0]["preview_png"]
    assert url.startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert image.size == (64, 64) and image.mode == "L"
    plain = client.post("/v1/detect", files=form_files(series_uploads[:1]), headers=AUTH).json()["results"][0]
    assert "preview_png" not in plain


def test_stow_rs_gives_the_same_results_as_detect(client, series_uploads):
    form = client.post("/v1/detect", files=form_files(series_uploads), headers=AUTH).json()
    body, content_type = stow_request([data for _, data in series_uploads])
    stow = client.post("/v1/studies", content=body, headers={**AUTH, "Content-Type": content_type, "Accept": "application/json"})
    assert stow.status_code == 200, stow.text
    strip = [{k: v for k, v in r.items() if k != "source"} for r in form["results"]]
    assert [{k: v for k, v in r.items() if k != "source"} for r in stow.json()["results"]] == strip
    assert stow.json()["results"][0]["source"].startswith("part ")


@pytest.mark.parametrize("route", ["/v1/detect", "/v1/studies"])
def test_accept_dicom_returns_a_tid1500_sr_referencing_the_sources(client, series_uploads, route):
    uploads = series_uploads[1:3]
    json_answer = client.post("/v1/detect?min_score=0.5", files=form_files(uploads), headers=AUTH).json()
    headers = {**AUTH, "Accept": "application/dicom"}
    if route == "/v1/detect":
        response = client.post(f"{route}?min_score=0.5", files=form_files(uploads), headers=headers)
    else:
        body, content_type = stow_request([data for _, data in uploads])
        response = client.post(f"{route}?min_score=0.5", content=body, headers={**headers, "Content-Type": content_type})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/dicom"
    sr = hd.sr.srread(io.BytesIO(response.content))
    assert sr.Modality == "SR" and sr.ContentQualification == "RESEARCH"
    source = pydicom.dcmread(io.BytesIO(uploads[0][1]), stop_before_pixels=True)
    assert sr.PatientID == source.PatientID and sr.StudyInstanceUID == source.StudyInstanceUID
    evidence = {
        item.ReferencedSOPInstanceUID
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    }
    assert evidence == {_uids(data)[0] for _, data in uploads}
    groups = sr.content.get_planar_roi_measurement_groups()
    expected = [(r["sop_instance_uid"], d) for r in json_answer["results"] for d in r["detections"]]
    assert len(groups) == len(expected) > 0
    for group, (sop_uid, detection) in zip(groups, expected):
        assert group.roi.GraphicType == "POLYLINE"
        points = group.roi.value
        assert points.shape == (5, 2) and (points[0] == points[-1]).all()
        x1, y1, x2, y2 = detection["box_px"]
        assert points[:, 0].min() == pytest.approx(x1) and points[:, 1].max() == pytest.approx(y2)
        assert group.roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == sop_uid
        names = {m.name.meaning: m.value for m in group.get_measurements()}
        assert names["Long axis"] == pytest.approx(detection["long_diameter_mm"])
        assert names["Probability"] == pytest.approx(detection["score"])
        # the lesion type, coded, and P(type | lesion) of that type, as the JSON answer gives them
        (lesion_type,) = group.get_qualitative_evaluations(name=LESION_TYPE)
        assert lesion_type.value.scheme_designator == "99FSD"
        assert lesion_type.value.meaning == detection["type"].replace("_", " ") + " lesion"
        assert lesion_type.value == lesion_type_code(detection["type"])
        (probability,) = group.get_measurements(name=LESION_TYPE_PROBABILITY)
        assert probability.value == pytest.approx(detection["type_scores"][detection["type"]])
        assert probability.unit.value == "1" and probability.unit.scheme_designator == "UCUM"
        assert probability.value == max(detection["type_scores"].values()), "the type is the most likely one"
        (site,) = group.finding_sites
        assert site.value.scheme_designator == "SCT", "the SNOMED finding site stays beside the private type code"
    assert [item.CodingSchemeDesignator for item in sr.CodingSchemeIdentificationSequence] == ["99FSD"]
    texts = _text_items(sr)
    assert ("Algorithm Name", "test") in texts and ("Algorithm Version", "0") in texts


def test_sr_without_detections_says_no_lesion(client, series_uploads):
    response = client.post(
        "/v1/detect?min_score=1", files=form_files(series_uploads[:1]), headers={**AUTH, "Accept": "application/dicom"}
    )
    sr = hd.sr.srread(io.BytesIO(response.content))
    assert sr.content.get_planar_roi_measurement_groups() == []
    (group,) = sr.content.get_image_measurement_groups()
    (evaluation,) = group.get_qualitative_evaluations()
    assert evaluation.value.meaning == "Absent"


def test_sr_refuses_files_of_several_patients(client, series_uploads, ct_small_bytes):
    response = client.post(
        "/v1/detect",
        files=form_files([series_uploads[0], ("ct_small.dcm", ct_small_bytes)]),
        headers={**AUTH, "Accept": "application/dicom"},
    )
    assert response.status_code == 422 and response.json()["error"]["code"] == "mixed_patients"


def test_json_is_preferred_unless_dicom_is_asked_for(client, series_uploads):
    files = form_files(series_uploads[:1])
    for accept in ("*/*", "application/json, application/dicom;q=0.5", "application/*"):
        response = client.post("/v1/detect", files=files, headers={**AUTH, "Accept": accept})
        assert response.headers["content-type"].startswith("application/json"), accept


def test_model_card_route(client, model_dir: Path):
    import json

    response = client.get("/v1/model", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == json.loads((model_dir / "model.json").read_text())


@pytest.mark.slow
def test_server_detections_equal_fsd_predict(client, synth_series, tmp_path, model_dir):
    """The server and `fsd predict` share preprocessing and inference: same files, same boxes."""
    offline = predict_files(model_dir, list(synth_series), tmp_path / "out", device="cpu", min_score=0.05)
    uploads = [(path.name, path.read_bytes()) for path in synth_series]
    online = client.post("/v1/detect?min_score=0.05", files=form_files(uploads), headers=AUTH).json()["results"]
    assert len(online) == len(offline) == len(synth_series)
    for served, predicted in zip(online, offline):
        assert served["sop_instance_uid"] == predicted["sop_instance_uid"]
        assert served["context_slices"] == predicted["context_slices"]
        assert len(served["detections"]) == len(predicted["detections"])
        for a, b in zip(served["detections"], predicted["detections"]):
            assert a["type"] == b["type"]
            assert a["box_px"] == pytest.approx(b["box_px"], abs=0.02)
            assert a["score"] == pytest.approx(b["score"], abs=2e-4)
