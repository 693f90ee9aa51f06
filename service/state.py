"""What one running app holds between requests (created by the lifespan in :mod:`service.app`):
the model and its batcher, the decode pool, the admission cap, the kept SRs, the pipeline of
received studies and, when a destination is configured, the SR delivery queue."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from fsd.artifacts import InferenceModel
from service.batcher import DynamicBatcher
from service.errors import ServiceError
from service.metrics import ServiceMetrics
from service.settings import ServiceSettings
from service.sr_store import SRStore

if TYPE_CHECKING:  # the delivery queue and the study pipeline import this module
    from service.delivery import DeliveryQueue
    from service.study_pipeline import StudyPipeline


class Admission:
    """Caps the detection requests in progress; the one over the cap gets 503 at once."""

    def __init__(self, limit: int, retry_after_s: int, metrics: ServiceMetrics) -> None:
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.metrics = metrics
        self.active = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Held for one request's lifetime; used on the event loop only, so no lock is needed."""
        if self.active >= self.limit:
            self.metrics.rejected.labels("too_many_requests").inc()
            raise ServiceError(
                503,
                "too_many_requests",
                f"The server is already processing {self.limit} requests; retry shortly.",
                headers={"Retry-After": str(self.retry_after_s)},
            )
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1


@dataclass
class ServiceState:
    """The running app's parts; ``pipeline`` and ``delivery`` are set by the lifespan once built."""

    settings: ServiceSettings
    model: InferenceModel
    device: torch.device
    batcher: DynamicBatcher
    decode_pool: ThreadPoolExecutor
    metrics: ServiceMetrics
    admission: Admission
    sr_store: SRStore
    delivery: DeliveryQueue | None = None
    pipeline: StudyPipeline | None = None
    ready: bool = False
    warmup_error: str | None = None

    def mark_ready(self) -> None:
        self.ready = True
        self.metrics.ready.set(1)

    def mark_not_ready(self) -> None:
        self.ready = False
        self.metrics.ready.set(0)
