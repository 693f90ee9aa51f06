"""App-level behaviour under load and faults: readiness, 503/504 answers, OOM resilience, metrics."""

from __future__ import annotations

import asyncio
import dataclasses
import threading

import httpx
import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families
from service_helpers import AUTH, form_files, serving, wait_ready


class GatedModule(torch.nn.Module):
    """The real model behind a gate the test opens; optionally fails batches like a full GPU."""

    def __init__(self, inner: torch.nn.Module, oom_above: int | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.oom_above = oom_above
        self.gate = threading.Event()
        self.entered = 0  # batches that reached the model (the gate holds them)
        self.sizes: list[int] = []

    def forward(self, images: list[torch.Tensor]):
        self.entered += 1
        self.gate.wait(timeout=30)
        self.sizes.append(len(images))
        if self.oom_above is not None and len(images) > self.oom_above:
            raise RuntimeError("CUDA out of memory. Tried to allocate 1.50 GiB")
        return self.inner(images)


@pytest.fixture
def gated(inference_model):
    module = GatedModule(inference_model.module)
    yield dataclasses.replace(inference_model, module=module), module
    module.gate.set()


def _post_files(client: httpx.AsyncClient, uploads, **kwargs):
    return client.post("/v1/detect", files=form_files(uploads), headers=AUTH, **kwargs)


async def _run_app(app, scenario):
    """Run ``scenario(client, state)`` against the app with its lifespan, concurrently-capable."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service", timeout=60) as client:
            return await scenario(client, app.state)


async def _until(predicate, timeout_s: float = 10.0) -> None:
    for _ in range(int(timeout_s / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


def test_ready_only_after_warm_up(make_app, gated, series_uploads):
    model, module = gated
    with serving(make_app(model=model, warmup_runs=2), ready=False) as client:
        assert client.get("/health/live").status_code == 200
        not_ready = client.get("/health/ready")
        assert not_ready.status_code == 503 and not_ready.json()["error"]["code"] == "not_ready"
        assert not_ready.headers["Retry-After"] == "2"
        early = client.post("/v1/detect", files=form_files(series_uploads[:1]), headers=AUTH)
        assert early.status_code == 503 and early.json()["error"]["code"] == "not_ready"
        module.gate.set()
        wait_ready(client)
        ready = client.get("/health/ready").json()
        assert ready == {"status": "ready", "ready": True, "model": {"name": "test", "version": "0"}, "device": "cpu"}
        assert module.sizes[:2] == [1, 1], "two warm-up inferences ran before readiness"


def test_full_queue_is_503_with_retry_after(make_app, gated, series_uploads):
    model, module = gated
    app = make_app(model=model, warmup_runs=0, max_batch_slices=1, max_queue_slices=2, retry_after_s=7)

    async def scenario(client, state):
        running = asyncio.create_task(_post_files(client, series_uploads[:1]))
        # the first slice is inside the model, not still on its way to the queue: only then does the
        # queue hold exactly what is posted next
        await _until(lambda: module.entered == 1 and module.sizes == [] and state.batcher.queue_depth == 0)
        queued = asyncio.create_task(_post_files(client, series_uploads[1:3]))
        await _until(lambda: state.batcher.queue_depth == 2)
        rejected = await _post_files(client, series_uploads[3:4])
        module.gate.set()
        return rejected, await running, await queued

    rejected, running, queued = asyncio.run(_run_app(app, scenario))
    assert rejected.status_code == 503 and rejected.json()["error"]["code"] == "queue_full"
    assert rejected.headers["Retry-After"] == "7"
    assert running.status_code == 200 and queued.status_code == 200
    assert len(queued.json()["results"]) == 2


def test_too_many_concurrent_requests_is_503(make_app, gated, series_uploads):
    model, module = gated
    app = make_app(model=model, warmup_runs=0, max_concurrent_requests=1)

    async def scenario(client, state):
        first = asyncio.create_task(_post_files(client, series_uploads[:1]))
        await _until(lambda: state.admission.active == 1)
        second = await _post_files(client, series_uploads[1:2])
        module.gate.set()
        return second, await first

    second, first = asyncio.run(_run_app(app, scenario))
    assert second.status_code == 503 and second.json()["error"]["code"] == "too_many_requests"
    assert "Retry-After" in second.headers and first.status_code == 200


def test_request_past_its_deadline_is_504(make_app, gated, series_uploads):
    model, module = gated
    app = make_app(model=model, warmup_runs=0, request_timeout_s=0.5)

    async def scenario(client, state):
        response = await _post_files(client, series_uploads[:2])
        depth = state.batcher.queue_depth
        module.gate.set()
        return response, depth

    response, depth = asyncio.run(_run_app(app, scenario))
    assert response.status_code == 504 and response.json()["error"]["code"] == "deadline_exceeded"
    assert depth == 0, "the timed-out request's slices left the queue"


def test_out_of_memory_on_a_batch_still_answers_every_slice(make_app, inference_model, series_uploads, client):
    expected = client.post("/v1/detect", files=form_files(series_uploads), headers=AUTH).json()["results"]
    module = GatedModule(inference_model.module, oom_above=2)
    module.gate.set()
    faulty = dataclasses.replace(inference_model, module=module)
    with serving(make_app(model=faulty, warmup_runs=0, max_batch_slices=8, max_wait_ms=50)) as faulty_client:
        response = faulty_client.post("/v1/detect", files=form_files(series_uploads), headers=AUTH)
        metrics = faulty_client.get("/metrics").text
    assert response.status_code == 200
    assert module.sizes == [5, 2, 3, 1, 2], "5 fails, 2 fits, 3 fails, then 1 and 2 fit"
    got = response.json()["results"]
    assert [r["detections"] for r in got] == [r["detections"] for r in expected]
    assert "fsd_oom_splits_total 2.0" in metrics  # 5 -> 2 + 3, then 3 -> 1 + 2


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def test_metrics_count_requests_batches_queue_and_slices(client, series_uploads):
    assert client.post("/v1/detect", files=form_files(series_uploads), headers=AUTH).status_code == 200
    assert client.post("/v1/detect", files=form_files(series_uploads[:1])).status_code == 401
    client.get("/no/such/path/1234")
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    values = _samples(response.text)
    detect = (("method", "POST"), ("route", "/v1/detect"))
    assert values[("fsd_http_requests_total", (*detect, ("status", "200")))] == 1
    assert values[("fsd_http_requests_total", (*detect, ("status", "401")))] == 1
    assert values[("fsd_http_requests_total", (("method", "GET"), ("route", "unmatched"), ("status", "404")))] == 1
    assert values[("fsd_http_request_duration_seconds_count", (("route", "/v1/detect"),))] == 2
    warmup = 1
    assert values[("fsd_slices_processed_total", ())] == len(series_uploads) + warmup
    assert values[("fsd_batch_size_slices_sum", ())] == len(series_uploads) + warmup
    assert values[("fsd_queue_depth_slices", ())] == 0
    assert values[("fsd_ready", ())] == 1
    assert not any("1234" in str(key) for key in values), "raw paths never become labels"
