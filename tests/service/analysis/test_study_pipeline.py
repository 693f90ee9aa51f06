"""The background analysis of received studies: a study waits out a full queue for as long as it
takes (capped backoff, in chunks that fit a queue that is not empty), and a study whose analysis
fails in an unexpected way, or is cut short by shutdown, is counted and logged, never silently
lost. The studies come in through the real DICOM node and STOW-RS; the model is the real one,
held or with its output damaged where a test needs it."""

from __future__ import annotations

import dataclasses
import io
import logging

import pydicom
import torch
from dicom_helpers import datasets_of, send_study, wait_for
from service_helpers import AUTH, SlowModule, metric, serving, stow_request

from service.analysis.study import chunk_slices

NODE = {"dicom_enabled": True, "dicom_port": 0, "dicom_allowed_calling_ae_titles": ["TESTSCU"]}
FAILED = 'fsd_studies_analysed_total{outcome="failed",source="%s"}'


class DamagedOutput(torch.nn.Module):
    """The real model, its detections stripped of everything but the boxes."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, images: list[torch.Tensor]) -> object:
        losses, output = self.inner(images)
        return losses, [{"boxes": item["boxes"]} for item in output]


def _study(series_uploads) -> str:
    return str(pydicom.dcmread(io.BytesIO(series_uploads[0][1]), stop_before_pixels=True).StudyInstanceUID)


def test_chunks_fit_a_queue_that_is_three_quarters_full():
    assert [chunk_slices(size) for size in (1, 4, 8, 512, 4096)] == [1, 1, 2, 64, 64]


def test_a_study_waits_out_a_full_queue_for_as_long_as_it_takes(make_app, inference_model, series_uploads, caplog):
    """The model is held with the queue full; the study's slices are refused far more often than the
    8 attempts the node used to make, and it is analysed once there is room."""
    import threading

    caplog.set_level(logging.WARNING, logger="fsd")
    module = SlowModule(inference_model.module)
    app = make_app(
        model=dataclasses.replace(inference_model, module=module), warmup_runs=0, max_queue_slices=1, max_batch_slices=1,
        analysis_retry_initial_s=0.02, analysis_retry_max_s=0.05, **NODE,
    )
    study = _study(series_uploads)
    try:
        with serving(app) as client:
            files = [("files", (name, data, "application/dicom")) for name, data in series_uploads[:2]]
            answers: list[int] = []
            held = threading.Thread(target=lambda: answers.append(client.post("/v1/detect", files=files, headers=AUTH).status_code))
            held.start()  # two slices: one in the (held) model, one filling the queue
            assert module.entered.wait(timeout=30)
            wait_for(lambda: app.state.batcher.queue_depth == 1, what="a full queue")
            datas = [data for _, data in series_uploads]
            assert send_study(app.state.dicom_node.port, datasets_of(datas)) == [0] * len(datas)
            wait_for(lambda: caplog.text.count("(QueueFullError") >= 12, what="many refusals for load")
            assert client.app.state.sr_store.find(study) == [] and metric(client, FAILED % "dimse") == 0
            module.release.set()
            wait_for(lambda: client.app.state.sr_store.find(study), what="the study's SR")
            held.join(timeout=30)
            assert answers == [200]
    finally:
        module.release.set()


def test_an_unexpected_failure_is_counted_and_logged_not_lost(make_app, inference_model, series_uploads, caplog):
    caplog.set_level(logging.INFO, logger="fsd")
    app = make_app(model=dataclasses.replace(inference_model, module=DamagedOutput(inference_model.module)), **NODE)
    datas = [data for _, data in series_uploads]
    with serving(app) as client:
        assert send_study(app.state.dicom_node.port, datasets_of(datas)) == [0] * len(datas)
        wait_for(lambda: metric(client, FAILED % "dimse") == 1, what="the failed analysis counted")
        body, content_type = stow_request(datas)
        assert client.post("/v1/studies", content=body, headers={**AUTH, "Content-Type": content_type}).status_code == 200
        wait_for(lambda: metric(client, FAILED % "stow") == 1, what="the failed analysis counted")
    assert caplog.text.count("not analysed: unexpected KeyError") == 2


def test_a_study_cut_short_by_shutdown_is_counted_and_logged(make_app, inference_model, series_uploads, caplog):
    caplog.set_level(logging.INFO, logger="fsd")
    module = SlowModule(inference_model.module)
    app = make_app(model=dataclasses.replace(inference_model, module=module), warmup_runs=0, shutdown_timeout_s=1, **NODE)
    datas = [data for _, data in series_uploads]
    try:
        with serving(app):
            assert send_study(app.state.dicom_node.port, datasets_of(datas)) == [0] * len(datas)
            assert module.entered.wait(timeout=30), "its analysis is under way (held in the model)"
    finally:
        module.release.set()
    assert 'fsd_studies_analysed_total{outcome="failed",source="dimse"} 1.0' in app.state.metrics.render().decode()
    assert "the service stopped before its analysis finished" in caplog.text
