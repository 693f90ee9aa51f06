"""Whole synthetic series through both upload routes, and a model that finds nothing.

A slice on which the detector keeps no candidate box at all must still get its (empty) result:
one such slice used to fail the whole request with a 500.
"""

from __future__ import annotations

import pytest
import torch
from service_helpers import AUTH, export_untrained_model, form_files, serving, stow_request

from fsd.artifacts import InferenceModel, load_exported
from fsd.data.dl_info import read_dl_info
from fsd.inference.results import detections_to_result
from service import create_app, load_settings

TEST_SPLIT = 3


@pytest.fixture(scope="module")
def empty_model(tmp_path_factory: pytest.TempPathFactory) -> InferenceModel:
    """A real exported detector whose score threshold (0.9999) no candidate of its untrained head passes."""
    return load_exported(export_untrained_model(tmp_path_factory.mktemp("empty_model"), score_thresh=0.9999, name="empty"), "cpu")


@pytest.fixture(scope="module")
def test_patient_series(tmp_path_factory: pytest.TempPathFactory) -> list[list[bytes]]:
    """Every series of every test-split patient of a small synthetic set, all slices of each."""
    from fsd.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("synth_whole")
    generate_dataset(root, patients=8, size=64, seed=3, dicom=True, progress=False)
    folders = sorted({record.folder for record in read_dl_info(root / "DL_info.csv") if record.split == TEST_SPLIT})
    assert folders, "the synthetic set has test patients"
    series = [[path.read_bytes() for path in sorted((root / "dicom" / folder).glob("*.dcm"))] for folder in folders]
    assert all(len(slices) > 10 for slices in series)
    return series


def test_a_slice_without_detections_gets_an_empty_result(empty_model, synth_series):
    from fsd.inference.inputs import slice_inputs_from_ct
    from fsd.io.dicom import read_ct_file

    inputs = slice_inputs_from_ct(read_ct_file(synth_series[0]), empty_model.preprocess)
    empty = {
        "boxes": torch.zeros(0, 4),
        "scores": torch.zeros(0),
        "labels": torch.zeros(0, dtype=torch.int64),
        "type_scores": torch.zeros(0, len(empty_model.class_names)),
    }
    result = detections_to_result(empty, inputs[0], empty_model.class_names)
    assert result["detections"] == []
    assert result["sop_instance_uid"] == inputs[0].sop_instance_uid


@pytest.mark.slow
@pytest.mark.parametrize("route", ["/v1/detect", "/v1/studies"])
@pytest.mark.parametrize("which", ["trained_threshold_0", "finds_nothing"])
def test_every_test_patient_series_is_answered_slice_by_slice(
    route, which, model_dir, inference_model, empty_model, test_patient_series
):
    model = inference_model if which == "trained_threshold_0" else empty_model
    settings = load_settings(model_dir=model_dir, api_key=AUTH["X-API-Key"], warmup_runs=1, max_wait_ms=5.0)
    with serving(create_app(settings, model=model)) as client:
        for slices in test_patient_series:
            if route == "/v1/detect":
                response = client.post(route, files=form_files([(f"{i}.dcm", data) for i, data in enumerate(slices)]), headers=AUTH)
            else:
                body, content_type = stow_request(slices)
                headers = {**AUTH, "Content-Type": content_type, "Accept": "application/json"}
                response = client.post(route, content=body, headers=headers)
            assert response.status_code == 200, response.text
            results = response.json()["results"]
            assert len(results) == len(slices)
            if which == "finds_nothing":
                assert all(result["detections"] == [] for result in results)
