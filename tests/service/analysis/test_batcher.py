"""The dynamic batcher with the real test model: merging, buckets, out-of-memory splitting,
queue bound, deadlines, failures and draining."""

from __future__ import annotations

import asyncio
import threading

import pytest
import torch

from service.analysis.batcher import (
    BatcherClosedError,
    DeadlineExceededError,
    DynamicBatcher,
    InferenceFailedError,
    OutOfMemoryError,
    QueueFullError,
    is_out_of_memory,
    padded_size_bucket,
)
from service.analysis.runtime import make_infer
from service.common.metrics import ServiceMetrics


class Recorder:
    """Wraps an inference function: records batch sizes, can block, can fail like a GPU."""

    def __init__(self, infer, oom_above: int | None = None, fail: bool = False) -> None:
        self.infer = infer
        self.oom_above = oom_above
        self.fail = fail
        self.calls: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, images):
        self.gate.wait(timeout=30)
        self.calls.append(len(images))
        if self.oom_above is not None and len(images) > self.oom_above:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if self.fail:
            raise ValueError("broken model")
        return self.infer(images)


def _images(count: int, size: int = 64, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand(3, size, size, generator=generator) for _ in range(count)]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(a[key].shape == b[key].shape and torch.allclose(a[key], b[key], atol=1e-4) for key in ("boxes", "scores", "labels"))


@pytest.fixture
def infer(inference_model):
    return make_infer(inference_model, torch.device("cpu"))


async def _with_batcher(batcher: DynamicBatcher, body):
    batcher.start()
    try:
        return await body(batcher)
    finally:
        await batcher.drain(30)


def test_concurrent_requests_share_model_calls_and_get_their_own_results(infer):
    recorder = Recorder(infer)
    recorder.gate.clear()  # hold the worker until every request is queued
    batcher = DynamicBatcher(recorder, max_batch_slices=8, max_wait_s=0.05)
    requests = [_images(2, seed=seed) for seed in range(3)]

    async def body(batcher):
        tasks = [asyncio.create_task(batcher.submit(images)) for images in requests]
        await asyncio.sleep(0.05)
        recorder.gate.set()
        return await asyncio.gather(*tasks)

    results = asyncio.run(_with_batcher(batcher, body))
    assert sum(recorder.calls) == 6 and max(recorder.calls) > 2, "slices of different requests were merged"
    assert [len(detections) for detections in results] == [2, 2, 2]
    for images, detections in zip(requests, results):  # each request got its own images' detections
        assert _same(detections[1], infer([images[1]])[0]), "a merged batch answers exactly like a lone call"


def test_only_same_padded_size_slices_are_batched_together(infer):
    recorder = Recorder(infer)
    recorder.gate.clear()
    batcher = DynamicBatcher(recorder, max_batch_slices=8, max_wait_s=0.05, bucket_of=padded_size_bucket(32))
    small, large = _images(2, size=60), _images(2, size=100)

    async def body(batcher):
        tasks = [asyncio.create_task(batcher.submit(images)) for images in (small, large)]
        await asyncio.sleep(0.05)
        recorder.gate.set()
        return await asyncio.gather(*tasks)

    asyncio.run(_with_batcher(batcher, body))
    assert sorted(recorder.calls) == [2, 2]


def test_batches_never_exceed_the_maximum(infer):
    recorder = Recorder(infer)
    batcher = DynamicBatcher(recorder, max_batch_slices=3, max_wait_s=0.01)
    detections = asyncio.run(_with_batcher(batcher, lambda b: b.submit(_images(7, size=32))))
    assert len(detections) == 7 and max(recorder.calls) <= 3 and sum(recorder.calls) == 7


def test_out_of_memory_batches_are_halved_until_they_fit(infer):
    recorder = Recorder(infer, oom_above=2)
    metrics = ServiceMetrics()
    batcher = DynamicBatcher(recorder, max_batch_slices=8, max_wait_s=0.0, metrics=metrics)
    images = _images(8, size=48)
    detections = asyncio.run(_with_batcher(batcher, lambda b: b.submit(images)))
    assert recorder.calls[0] == 8 and recorder.calls[1:3] == [4, 2]
    assert max(size for size in recorder.calls if size <= 2) == 2
    assert len(detections) == 8
    assert all(_same(detections[i], infer([images[i]])[0]) for i in (0, 5))
    assert metrics.oom_splits._value.get() == 3  # 8 -> 4+4, each 4 -> 2+2


def test_a_single_slice_that_does_not_fit_fails_only_its_request(infer):
    recorder = Recorder(infer, oom_above=0)
    batcher = DynamicBatcher(recorder, max_batch_slices=4, max_wait_s=0.0)
    with pytest.raises(OutOfMemoryError):
        asyncio.run(_with_batcher(batcher, lambda b: b.submit(_images(1, size=32))))
    recorder.oom_above = None
    healthy = DynamicBatcher(recorder, max_batch_slices=4, max_wait_s=0.0)
    assert len(asyncio.run(_with_batcher(healthy, lambda b: b.submit(_images(2, size=32))))) == 2


def test_model_errors_fail_the_request_and_the_worker_keeps_serving(infer):
    recorder = Recorder(infer, fail=True)
    batcher = DynamicBatcher(recorder, max_batch_slices=4, max_wait_s=0.0)

    async def body(batcher):
        with pytest.raises(InferenceFailedError):
            await batcher.submit(_images(2, size=32))
        recorder.fail = False
        return await batcher.submit(_images(2, size=32))

    assert len(asyncio.run(_with_batcher(batcher, body))) == 2


def test_full_queue_rejects_at_once(infer):
    recorder = Recorder(infer)
    recorder.gate.clear()
    metrics = ServiceMetrics()
    batcher = DynamicBatcher(recorder, max_batch_slices=1, max_wait_s=0.0, max_queue_slices=3, metrics=metrics)

    async def body(batcher):
        first = asyncio.create_task(batcher.submit(_images(1, size=32)))  # taken by the (blocked) worker
        await asyncio.sleep(0.05)
        queued = asyncio.create_task(batcher.submit(_images(3, size=32)))
        await asyncio.sleep(0.05)
        assert batcher.queue_depth == 3
        with pytest.raises(QueueFullError):
            await batcher.submit(_images(1, size=32))
        recorder.gate.set()
        return await asyncio.gather(first, queued)

    first, queued = asyncio.run(_with_batcher(batcher, body))
    assert len(first) == 1 and len(queued) == 3
    assert metrics.rejected.labels("queue_full")._value.get() == 1


def test_a_request_larger_than_the_queue_is_admitted_when_the_queue_is_empty(infer):
    batcher = DynamicBatcher(Recorder(infer), max_batch_slices=4, max_wait_s=0.0, max_queue_slices=2)
    assert len(asyncio.run(_with_batcher(batcher, lambda b: b.submit(_images(5, size=32))))) == 5


def test_deadline_withdraws_the_request_from_the_queue(infer):
    recorder = Recorder(infer)
    recorder.gate.clear()
    batcher = DynamicBatcher(recorder, max_batch_slices=1, max_wait_s=0.0)

    async def body(batcher):
        blocker = asyncio.create_task(batcher.submit(_images(1, size=32)))
        await asyncio.sleep(0.05)
        with pytest.raises(DeadlineExceededError):
            await batcher.submit(_images(4, size=32), timeout_s=0.1)
        assert batcher.queue_depth == 0, "expired slices are not computed"
        recorder.gate.set()
        return await blocker

    asyncio.run(_with_batcher(batcher, body))
    assert recorder.calls == [1]


def test_drain_finishes_queued_work_then_refuses_new_work(infer):
    recorder = Recorder(infer)
    recorder.gate.clear()
    batcher = DynamicBatcher(recorder, max_batch_slices=2, max_wait_s=0.0)

    async def body():
        batcher.start()
        pending = [asyncio.create_task(batcher.submit(_images(2, size=32, seed=s))) for s in range(3)]
        await asyncio.sleep(0.05)
        drain = asyncio.create_task(batcher.drain(30))
        await asyncio.sleep(0.05)
        with pytest.raises(BatcherClosedError):
            await batcher.submit(_images(1, size=32))
        recorder.gate.set()
        assert await drain
        return await asyncio.gather(*pending)

    results = asyncio.run(body())
    assert [len(r) for r in results] == [2, 2, 2] and sum(recorder.calls) == 6


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (torch.cuda.OutOfMemoryError("CUDA out of memory"), True),
        (RuntimeError("CUDA error: out of memory"), True),
        (RuntimeError("The following operation failed in the TorchScript interpreter ... CUDA out of memory."), True),
        (RuntimeError("shape mismatch"), False),
        (MemoryError(), False),
        (ValueError("out of memory"), False),
    ],
)
def test_out_of_memory_recognition(error, expected):
    assert is_out_of_memory(error) is expected


def test_several_workers_run_batches_at_once_and_answer_like_one(infer):
    """Two workers (one CPU thread each, as the server sets them up) run two batches at the same time
    on the real model; every request gets exactly the detections a lone call gives."""
    both_inside = threading.Event()
    entered: list[str] = []

    def concurrent(images):
        entered.append(threading.current_thread().name)
        if len(set(entered)) == 2:
            both_inside.set()
        both_inside.wait(timeout=30)
        return infer(images)

    batcher = DynamicBatcher(
        concurrent, max_batch_slices=2, max_wait_s=0.0, workers=2, worker_setup=lambda: torch.set_num_threads(1)
    )
    requests = [_images(2, seed=seed) for seed in range(4)]

    async def body(batcher):
        return await asyncio.gather(*(batcher.submit(images) for images in requests))

    results = asyncio.run(_with_batcher(batcher, body))
    assert both_inside.is_set(), "two batches were in the model at the same time"
    assert set(entered) == {"fsd-batcher-0", "fsd-batcher-1"}
    for images, detections in zip(requests, results):
        assert all(_same(detections[i], infer([images[i]])[0]) for i in range(2))
    with pytest.raises(ValueError, match="workers"):
        DynamicBatcher(infer, workers=0)
