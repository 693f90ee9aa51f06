"""The app factory: ``create_app(settings)`` builds a FastAPI app whose lifespan loads the model.

Start-up loads the exported model (TorchScript + model card) on the configured device (CUDA when
available with "auto"), starts the batcher's model thread and the decode pool, then warms the
model up in the background: ``/health/live`` answers at once, ``/health/ready`` only after the
warm-up inference. It starts the study pipeline (studies received by STOW-RS or the DICOM node,
analysed in the background) and, when configured, the SR delivery queue and the DICOM node.
Shutdown (uvicorn has stopped accepting connections and finished in-flight requests) marks the
app not ready, stops the DICOM node, closes intake and analyses every study received, lets the
batcher finish every queued slice, tries the undelivered SRs once more, then stops the threads. Tests pass
their own ``settings`` and may pass an already loaded ``model``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import torch
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from fsd import __version__
from fsd.artifacts import InferenceModel
from fsd.constants import RESEARCH_USE_ONLY
from fsd.device import resolve_device
from service.batcher import DynamicBatcher
from service.delivery import DeliveryQueue
from service.destinations import destination_from_settings
from service.errors import UnexpectedErrorMiddleware, code_locations, install_error_handlers
from service.log_config import protect_library_logs
from service.metrics import MetricsMiddleware, ServiceMetrics
from service.routes import detect, health, metrics, studies, viewer, wado
from service.routes import model as model_routes
from service.runtime import cpu_threads, load_model, make_infer, size_bucket, thread_setup, warmup_image
from service.settings import ServiceSettings, load_settings
from service.sr_spool import SRSpool
from service.sr_store import SRStore
from service.state import Admission, ServiceState
from service.study_pipeline import StudyPipeline

logger = logging.getLogger("fsd.service")

DESCRIPTION = f"""CT lesion detection on DICOM uploads, with a detector found by neural architecture search.

**{RESEARCH_USE_ONLY}**

Authentication: send the API key as `X-API-Key: <key>` or `Authorization: Bearer <key>` on `/v1/*`
routes. `/health/*`, `/metrics`, `/` (viewer) and the API docs are open.

Every error is `{{"error": {{"code": "...", "message": "..."}}}}` with a stable `code`.
"""


async def _warm_up(state: ServiceState) -> None:
    """Run the configured warm-up inferences through the batcher, then mark the app ready."""
    try:
        image = warmup_image(state.model.preprocess)
        for _ in range(state.settings.warmup_runs):
            await state.batcher.submit([image])
    except Exception as error:
        state.warmup_error = type(error).__name__
        logger.error("warm-up failed: %s at\n%s", type(error).__name__, code_locations(error))
        return
    state.mark_ready()
    logger.info("ready after %d warm-up run(s)", state.settings.warmup_runs)


def _model_device(loaded: InferenceModel) -> torch.device:
    """Where an already loaded model's weights live (the CPU for a model without parameters)."""
    return next((parameter.device for parameter in loaded.module.parameters()), torch.device("cpu"))


def _build_state(
    settings: ServiceSettings, loaded: InferenceModel, device: torch.device, metrics: ServiceMetrics
) -> ServiceState:
    batcher = DynamicBatcher(
        make_infer(loaded, device),
        max_batch_slices=settings.max_batch_slices,
        max_wait_s=settings.max_wait_ms / 1000.0,
        max_queue_slices=settings.max_queue_slices,
        bucket_of=size_bucket(loaded),
        metrics=metrics,
        worker_setup=thread_setup(cpu_threads(settings.torch_threads, device)),
    )
    return ServiceState(
        settings=settings,
        model=loaded,
        device=device,
        batcher=batcher,
        decode_pool=ThreadPoolExecutor(settings.decode_workers, thread_name_prefix="fsd-decode"),
        metrics=metrics,
        admission=Admission(settings.max_concurrent_requests, settings.retry_after_s, metrics),
        sr_store=SRStore(settings.sr_keep_bytes, settings.sr_keep_s, metrics),
    )


def _delivery_queue(settings: ServiceSettings, metrics: ServiceMetrics, sr_store: SRStore) -> DeliveryQueue | None:
    destination = destination_from_settings(settings)
    if destination is None:
        return None
    return DeliveryQueue(
        destination,
        max_queue=settings.delivery_max_queue,
        initial_s=settings.delivery_retry_initial_s,
        max_s=settings.delivery_retry_max_s,
        metrics=metrics,
        sr_store=sr_store,
        spool=SRSpool(settings.sr_spool_dir) if settings.sr_spool_dir is not None else None,
    )


def create_app(settings: ServiceSettings | None = None, *, model: InferenceModel | None = None) -> FastAPI:
    """A new app; ``settings`` default to :func:`service.settings.load_settings` (env + file)."""
    settings = settings or load_settings()
    protect_library_logs()
    metrics_registry = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if model is None:
            device = resolve_device(settings.device)
            loaded = await asyncio.to_thread(load_model, str(settings.model_dir), device)
        else:
            loaded, device = model, _model_device(model)
        state = _build_state(settings, loaded, device, metrics_registry)
        state.delivery = _delivery_queue(settings, metrics_registry, state.sr_store)
        state.pipeline = StudyPipeline(state)
        state.batcher.start()
        if state.delivery is not None:
            state.delivery.start()
        state.pipeline.start()
        node = None
        if settings.dicom_enabled:
            from service.dimse.node import DicomNode

            node = DicomNode(state, state.pipeline)
            node.start()
        app.state.service = state
        app.state.dicom_node = node
        warm_up = asyncio.create_task(_warm_up(state))
        try:
            yield
        finally:
            state.mark_not_ready()
            if node is not None:
                await node.stop()
            await state.pipeline.stop(settings.shutdown_timeout_s)
            drained = await state.batcher.drain(settings.shutdown_timeout_s)
            if state.delivery is not None:
                await state.delivery.close(settings.shutdown_timeout_s)
            warm_up.cancel()
            state.decode_pool.shutdown(wait=True, cancel_futures=True)
            app.state.service = None
            logger.info("stopped (%s)", "queue drained" if drained else "drain timed out")

    app = FastAPI(
        title="FSD lesion detection",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics_registry
    app.state.service = None
    app.state.dicom_node = None
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=metrics_registry)
    app.add_middleware(UnexpectedErrorMiddleware)  # added last: outermost, sees what others let through
    routers = (detect.router, studies.router, wado.router, model_routes.router, health.router, metrics.router, viewer.router)
    for router in routers:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=viewer.STATIC_DIR), name="static")
    return app
