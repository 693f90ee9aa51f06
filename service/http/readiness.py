"""Whether the app serves detections: ready after the warm-up inference, until shutdown.

The lifespan loads the model, then :func:`warm_up` runs ``warmup_runs`` inferences through the
batcher in the background: ``/health/live`` answers at once, ``/health/ready`` (and the
detection and STOW-RS routes) only once the warm-up ran.
"""

from __future__ import annotations

import logging

from service.analysis.batcher import DynamicBatcher
from service.analysis.runtime import ModelRuntime
from service.common.metrics import ServiceMetrics
from service.common.tracebacks import code_locations

logger = logging.getLogger("fsd.service")


class Readiness:
    """Owns the ready flag (mirrored in the ``fsd_ready`` gauge) and why the warm-up failed, if it did."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics
        self.ready = False
        self.warmup_error: str | None = None

    def mark_ready(self) -> None:
        self.ready = True
        self.metrics.ready.set(1)

    def mark_not_ready(self) -> None:
        self.ready = False
        self.metrics.ready.set(0)


async def warm_up(readiness: Readiness, runtime: ModelRuntime, batcher: DynamicBatcher, runs: int) -> None:
    """Run ``runs`` warm-up inferences through the batcher, then mark the app ready."""
    try:
        image = runtime.warmup_image()
        for _ in range(runs):
            await batcher.submit([image])
    except Exception as error:
        readiness.warmup_error = type(error).__name__
        logger.error("warm-up failed: %s at\n%s", type(error).__name__, code_locations(error))
        return
    readiness.mark_ready()
    logger.info("ready after %d warm-up run(s)", runs)
