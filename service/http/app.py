"""The app factory: ``create_app(settings)`` builds every object of the service once, from the
settings, registers each for the routes that use it, and returns the FastAPI app whose lifespan
starts and stops them.

What is built, stage by stage (each object's docstring says what it owns): the model runtime,
the dynamic batcher and the decode pool, the slice detector and the study analyser (analysis);
the SR store, the delivery queue to the configured destination and the outbox between them
(delivery); the study collector with its intake spool, the scheduler that hands due studies to
analysis, the STOW-RS intake and the DICOM node (ingest); readiness, the admission cap, the 503
builder and the two request answerers (HTTP). Routes receive them as FastAPI dependencies
(:mod:`.dependencies`); everything else receives what it needs as constructor arguments.

Start-up loads the exported model (TorchScript + model card) on the configured device (CUDA when
available with "auto"), starts the batcher's model workers and the SR delivery queue (which
reloads the SR spool), holds again every study the intake spool kept, starts the scheduler and
the DICOM node, then warms the model up in the background: ``/health/live`` answers at once,
``/health/ready`` only after the warm-up inference. Shutdown (uvicorn has stopped accepting
connections and finished in-flight requests) marks the app not ready, stops the DICOM node,
closes intake and analyses every study received, lets the batcher finish every queued slice,
tries the undelivered SRs once more, then stops the threads. Tests pass their own ``settings``
and may pass an already loaded ``model``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from fsd import __version__
from fsd.artifacts import InferenceModel
from fsd.constants import RESEARCH_USE_ONLY
from fsd.cpu import cpu_description
from service.analysis.batcher import DynamicBatcher
from service.analysis.pool import DecodePool
from service.analysis.received import ReceivedInstance
from service.analysis.runtime import ModelRuntime, model_workers, thread_setup, worker_threads
from service.analysis.slices import SliceDetector
from service.analysis.study import StudyAnalyser
from service.common.metrics import ServiceMetrics
from service.delivery.outbox import SROutbox
from service.delivery.sr_store import SRStore
from service.http.admission import Admission
from service.http.assembly import delivery_queue, dicom_node_config
from service.http.detection import DetectionRequests
from service.http.errors import UnexpectedErrorMiddleware, install_error_handlers
from service.http.log_config import protect_library_logs
from service.http.metrics_middleware import MetricsMiddleware
from service.http.readiness import Readiness, warm_up
from service.http.routes import detect, health, metrics, studies, viewer, wado
from service.http.routes import model as model_routes
from service.http.settings import ServiceSettings, load_settings
from service.http.store import StoreRequests
from service.http.unavailable import Unavailable
from service.ingest.collector import StudyCollector
from service.ingest.dicom_node import DicomNode
from service.ingest.instances import Refusal, receive
from service.ingest.scheduler import StudyScheduler
from service.ingest.spool import IntakeSpool
from service.ingest.stow import StowIntake

logger = logging.getLogger("fsd.service")

DESCRIPTION = f"""CT lesion detection on DICOM uploads, with a detector found by neural architecture search.

**{RESEARCH_USE_ONLY}**

Authentication: send the API key as `X-API-Key: <key>` or `Authorization: Bearer <key>` on `/v1/*`
routes. `/health/*`, `/metrics`, `/` (viewer) and the API docs are open.

Every error is `{{"error": {{"code": "...", "message": "..."}}}}` with a stable `code`.
"""


def create_app(settings: ServiceSettings | None = None, *, model: InferenceModel | None = None) -> FastAPI:
    """A new app; ``settings`` default to :func:`service.http.settings.load_settings` (env + file)."""
    settings = settings or load_settings()
    protect_library_logs()
    metrics_registry = ServiceMetrics()

    # analysis
    runtime = ModelRuntime(settings.model_dir, settings.device, model)
    workers = model_workers(settings.model_workers, runtime.device)
    model_threads = worker_threads(settings.torch_threads, runtime.device, workers)
    batcher = DynamicBatcher(
        runtime.infer,
        max_batch_slices=settings.max_batch_slices,
        max_wait_s=settings.max_wait_ms / 1000.0,
        max_queue_slices=settings.max_queue_slices,
        bucket_of=runtime.bucket,
        metrics=metrics_registry,
        worker_setup=thread_setup(model_threads),
        workers=workers,
    )
    pool = DecodePool(settings.decode_workers)
    detector = SliceDetector(runtime, batcher, pool, max_pixel_bytes=settings.max_pixel_bytes_per_file)
    # delivery
    sr_store = SRStore(settings.sr_keep_bytes, settings.sr_keep_s, metrics_registry)
    queue = delivery_queue(settings, metrics_registry, sr_store)
    outbox = SROutbox(sr_store, queue)
    analyser = StudyAnalyser(
        runtime, batcher, pool, outbox, metrics_registry,
        max_queue_slices=settings.max_queue_slices,
        chunk_timeout_s=settings.request_timeout_s,
        retry_initial_s=settings.analysis_retry_initial_s,
        retry_max_s=settings.analysis_retry_max_s,
        sr_max_findings=settings.sr_max_findings,
    )
    # ingest
    collector = StudyCollector(
        max_pending_bytes=settings.max_pending_bytes,
        max_study_bytes=settings.max_study_bytes,
        max_study_instances=settings.max_study_instances,
        metrics=metrics_registry,
        spool=IntakeSpool(settings.intake_spool_dir) if settings.intake_spool_dir is not None else None,
    )
    scheduler = StudyScheduler(
        collector, analyser, metrics_registry,
        max_concurrent_studies=settings.max_concurrent_studies,
        quiet_times=(settings.dicom_study_quiet_s, settings.stow_study_quiet_s),
    )
    intake = StowIntake(
        collector, scheduler, pool, outbox, metrics_registry,
        max_pixel_bytes=settings.max_pixel_bytes_per_file, quiet_s=settings.stow_study_quiet_s,
    )
    node = (
        DicomNode(dicom_node_config(settings), collector, scheduler, outbox, metrics_registry) if settings.dicom_enabled else None
    )
    # HTTP
    readiness = Readiness(metrics_registry)
    unavailable = Unavailable(settings.retry_after_s, metrics_registry)
    admission = Admission(settings.max_concurrent_requests, unavailable)
    detections = DetectionRequests(
        detector, admission, readiness, unavailable,
        max_request_bytes=settings.max_request_bytes, max_files=settings.max_files,
        default_min_score=settings.min_score, timeout_s=settings.request_timeout_s,
    )
    stores = StoreRequests(
        intake, admission, readiness, unavailable,
        max_request_bytes=settings.max_request_bytes, max_files=settings.max_files,
        timeout_s=settings.request_timeout_s, public_url=settings.public_url,
    )

    def read_back(data: bytes, label: str) -> ReceivedInstance | Refusal:
        return receive(data, label, settings.max_pixel_bytes_per_file)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.load()
        if runtime.device.type == "cpu":
            logger.info("%d model worker(s) on %s", workers, cpu_description(model_threads))
        batcher.start()
        if queue is not None:
            queue.start()
        await asyncio.to_thread(collector.restore, read_back)
        scheduler.start()
        if node is not None:
            node.start()
        warming = asyncio.create_task(warm_up(readiness, runtime, batcher, settings.warmup_runs))
        try:
            yield
        finally:
            readiness.mark_not_ready()
            if node is not None:
                await node.stop()
            await scheduler.stop(settings.shutdown_timeout_s)
            drained = await batcher.drain(settings.shutdown_timeout_s)
            if queue is not None:
                await queue.close(settings.shutdown_timeout_s)
            warming.cancel()
            pool.shutdown()
            logger.info("stopped (%s)", "queue drained" if drained else "drain timed out")

    app = FastAPI(title="FSD lesion detection", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    registered = {
        "settings": settings, "metrics": metrics_registry, "runtime": runtime, "batcher": batcher, "sr_store": sr_store,
        "delivery": queue, "collector": collector, "dicom_node": node, "readiness": readiness,
        "unavailable": unavailable, "admission": admission, "detections": detections, "stores": stores,
    }
    for name, part in registered.items():
        setattr(app.state, name, part)
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=metrics_registry)
    app.add_middleware(UnexpectedErrorMiddleware)  # added last: outermost, sees what others let through
    routers = (detect.router, studies.router, wado.router, model_routes.router, health.router, metrics.router, viewer.router)
    for router in routers:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=viewer.STATIC_DIR), name="static")
    return app
