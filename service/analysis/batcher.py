"""In-process dynamic batching: slices from concurrent requests share model calls.

Worker threads (``workers``; the app gives one per physical core on a CPU) are the only callers
of ``infer``, each on its own batches. Requests put their slices in a bounded queue and await a
future; a free worker takes the oldest slice and up to ``max_batch_slices - 1`` more *of the
same bucket*, waiting at most ``max_wait_s`` for the batch to fill. Several workers with one CPU
thread each keep the cores busy without synchronising them at every operation, as one worker
with several threads does (docs/benchmarks.md, "The server against the bare model, and speed on
another machine"). The bucket is the padded input size by default, so a slice is only ever
batched with slices the model pads to the same size, and its detections do not depend on which
other requests happened to share its batch.

Failure handling is the batcher's own:

- queue full: ``QueueFullError`` at once (the HTTP layer answers 503 + Retry-After); a request
  larger than the whole queue is still admitted when the queue is empty;
- deadline: ``DeadlineExceededError`` (504); the request's slices still queued are withdrawn;
- out of memory (``torch.cuda.OutOfMemoryError``, or a RuntimeError saying "out of memory"):
  the batch is halved and retried until single slices; a slice that fails alone fails only its
  own request (``OutOfMemoryError``), the worker keeps serving;
- shutdown: ``drain`` stops admissions (``BatcherClosedError``), finishes every queued slice,
  then stops the worker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import torch

from service.common.metrics import ServiceMetrics

logger = logging.getLogger("fsd.service")

Detection = dict[str, torch.Tensor]
InferFn = Callable[[list[torch.Tensor]], list[Detection]]
BucketFn = Callable[[torch.Tensor], Hashable]


class BatcherError(Exception):
    """Base of the batcher's failures; each maps to one HTTP answer."""


class QueueFullError(BatcherError):
    pass


class BatcherClosedError(BatcherError):
    pass


class DeadlineExceededError(BatcherError):
    pass


class OutOfMemoryError(BatcherError):
    pass


class InferenceFailedError(BatcherError):
    pass


def is_out_of_memory(error: BaseException) -> bool:
    """True for torch.cuda.OutOfMemoryError and RuntimeErrors whose message says "out of memory"."""
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(error, oom_type):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def _release_cached_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def padded_size_bucket(stride: int) -> BucketFn:
    """Bucket of an image (C, H, W): its size rounded up to ``stride``, as the model pads it."""

    def bucket(image: torch.Tensor) -> Hashable:
        height, width = int(image.shape[-2]), int(image.shape[-1])
        return (-(-height // stride) * stride, -(-width // stride) * stride)

    return bucket


@dataclass
class JobTiming:
    """Where a request's slices spent their time in the batcher (filled by the worker thread)."""

    submitted: float = field(default_factory=time.monotonic)
    #: when the first of its slices entered a model call
    first_batch: float | None = None
    #: wall time of the model calls that carried its slices
    model_s: float = 0.0

    @property
    def queue_wait_s(self) -> float:
        return 0.0 if self.first_batch is None else self.first_batch - self.submitted


@dataclass(eq=False)
class _Job:
    """One request's slices; resolved on its event loop when every slice has an outcome."""

    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[list[Detection]]
    results: list[Detection | None]
    remaining: int
    timing: JobTiming = field(default_factory=JobTiming)
    cancelled: bool = False
    error: BaseException | None = None

    def _settle(self) -> None:
        if self.future.done():
            return
        if self.error is not None:
            self.future.set_exception(self.error)
        else:
            self.future.set_result([result for result in self.results if result is not None])

    def deliver(self, index: int, outcome: Detection | BaseException) -> bool:
        """Record one slice's outcome (worker thread); True when the job just finished."""
        if isinstance(outcome, BaseException):
            self.error = self.error or outcome
        else:
            self.results[index] = outcome
        self.remaining -= 1
        finished = self.remaining == 0 or self.error is not None
        if finished:
            try:
                self.loop.call_soon_threadsafe(self._settle)
            except RuntimeError:  # the event loop is gone: nobody is waiting any more
                pass
        return finished


@dataclass(eq=False)
class _Item:
    job: _Job
    index: int
    image: torch.Tensor
    bucket: Hashable
    enqueued: float = field(default_factory=time.monotonic)


class DynamicBatcher:
    """Merges slices of concurrent requests into model calls; owns the queue of waiting slices and
    the worker threads that call the model (``workers``, one by default)."""

    def __init__(
        self,
        infer: InferFn,
        *,
        max_batch_slices: int = 8,
        max_wait_s: float = 0.01,
        max_queue_slices: int = 512,
        bucket_of: BucketFn | None = None,
        metrics: ServiceMetrics | None = None,
        worker_setup: Callable[[], None] | None = None,
        workers: int = 1,
    ) -> None:
        """``worker_setup`` runs first on each worker thread (thread-local settings such as the
        model's CPU thread count, which OpenMP keeps per thread)."""
        if max_batch_slices < 1 or max_queue_slices < 1 or max_wait_s < 0 or workers < 1:
            raise ValueError("max_batch_slices, max_queue_slices and workers must be >= 1 and max_wait_s >= 0")
        self._infer = infer
        self._worker_setup = worker_setup
        self.max_batch_slices = max_batch_slices
        self.max_wait_s = max_wait_s
        self.max_queue_slices = max_queue_slices
        self._bucket_of = bucket_of or (lambda image: None)
        self._metrics = metrics
        self._pending: deque[_Item] = deque()
        self._condition = threading.Condition()
        self._closing = False
        self._threads = [
            threading.Thread(target=self._work, name=f"fsd-batcher-{number}", daemon=True) for number in range(workers)
        ]

    # ------------------------------------------------------------------ event-loop side

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    @property
    def workers(self) -> int:
        """Threads running the model."""
        return len(self._threads)

    @property
    def queue_depth(self) -> int:
        """Slices waiting for the model (not counting the batch being computed)."""
        return len(self._pending)

    @property
    def closed(self) -> bool:
        return self._closing

    async def submit(
        self, images: Sequence[torch.Tensor], timeout_s: float | None = None, timing: JobTiming | None = None
    ) -> list[Detection]:
        """Detections for ``images`` in order; raises one of the BatcherError subclasses.
        ``timing`` (optional) receives the queue wait and model time of these slices."""
        if not images:
            return []
        loop = asyncio.get_running_loop()
        job = _Job(
            loop=loop, future=loop.create_future(), results=[None] * len(images), remaining=len(images), timing=timing or JobTiming()
        )
        with self._condition:
            if self._closing:
                raise BatcherClosedError("the server is shutting down")
            queued = len(self._pending)
            if queued and queued + len(images) > self.max_queue_slices:
                self._count_rejection("queue_full")
                raise QueueFullError(f"{queued} slices are waiting (limit {self.max_queue_slices})")
            self._pending.extend(_Item(job, index, image, self._bucket_of(image)) for index, image in enumerate(images))
            self._update_depth()
            self._condition.notify_all()
        try:
            return await asyncio.wait_for(job.future, timeout_s)
        except asyncio.TimeoutError:
            self._withdraw(job)
            self._count_rejection("deadline")
            raise DeadlineExceededError(f"no result within {timeout_s:.1f} s") from None
        except asyncio.CancelledError:  # the client went away
            self._withdraw(job)
            raise

    async def drain(self, timeout_s: float) -> bool:
        """Refuse new work, finish what is queued, stop the workers; False if they did not stop in time."""
        with self._condition:
            self._closing = True
            self._condition.notify_all()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            if thread.is_alive():
                await asyncio.to_thread(thread.join, max(deadline - time.monotonic(), 0.0))
        return not any(thread.is_alive() for thread in self._threads)

    def _withdraw(self, job: _Job) -> None:
        with self._condition:
            job.cancelled = True
            self._pending = deque(item for item in self._pending if item.job is not job)
            self._update_depth()

    def _update_depth(self) -> None:
        if self._metrics is not None:
            self._metrics.queue_depth.set(len(self._pending))

    def _count_rejection(self, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.rejected.labels(reason).inc()

    # ------------------------------------------------------------------ worker side

    def _work(self) -> None:
        if self._worker_setup is not None:
            self._worker_setup()
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            started = time.monotonic()
            outcomes = self._run_splitting([item.image for item in batch])
            elapsed = time.monotonic() - started
            for job in {id(item.job): item.job for item in batch}.values():
                if job.timing.first_batch is None:
                    job.timing.first_batch = started
                job.timing.model_s += elapsed
            for item, outcome in zip(batch, outcomes):
                if not item.job.cancelled and item.job.deliver(item.index, outcome) and item.job.error is not None:
                    self._withdraw(item.job)

    def _same_bucket(self, bucket: Hashable) -> int:
        return sum(1 for item in self._pending if item.bucket == bucket)

    def _next_batch(self) -> list[_Item] | None:
        """Block until a batch is due; None once closing with nothing left."""
        with self._condition:
            while True:
                if not self._pending:
                    if self._closing:
                        return None
                    self._condition.wait()
                    continue
                head = self._pending[0]
                if self._closing or self._same_bucket(head.bucket) >= self.max_batch_slices:
                    break
                remaining = head.enqueued + self.max_wait_s - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            batch: list[_Item] = []
            rest: deque[_Item] = deque()
            for item in self._pending:
                if len(batch) < self.max_batch_slices and item.bucket == head.bucket:
                    batch.append(item)
                else:
                    rest.append(item)
            self._pending = rest
            self._update_depth()
            return batch

    def _run_splitting(self, images: list[torch.Tensor]) -> list[Detection | BaseException]:
        """Run one batch; on out-of-memory retry the halves, down to single slices."""
        started = time.perf_counter()
        try:
            detections = self._infer(images)
            if len(detections) != len(images):
                raise RuntimeError(f"the model returned {len(detections)} results for {len(images)} images")
        except Exception as error:
            if not is_out_of_memory(error):
                logger.error("inference failed on a batch of %d slice(s): %s", len(images), type(error).__name__)
                failure = InferenceFailedError("the model failed on this request's slices")
                return [failure] * len(images)
            _release_cached_memory()
            if len(images) == 1:
                logger.warning("out of memory on a single slice of %s", tuple(images[0].shape))
                return [OutOfMemoryError("the model ran out of memory on a single slice")]
            if self._metrics is not None:
                self._metrics.oom_splits.inc()
            logger.warning("out of memory on a batch of %d slices; retrying in halves", len(images))
            half = len(images) // 2
            return self._run_splitting(images[:half]) + self._run_splitting(images[half:])
        if self._metrics is not None:
            self._metrics.batch_size.observe(len(images))
            self._metrics.slices.inc(len(images))
            self._metrics.inference_seconds.observe(time.perf_counter() - started)
        return list(detections)
