"""Liveness and readiness probes (unauthenticated, for orchestrators and load balancers).

``/health/live`` is 200 while the process serves HTTP. ``/health/ready`` is 200 only once the
model is loaded and its warm-up inference ran, and 503 before that and during shutdown.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.http.dependencies import ReadinessState, Runtime, Unavailability
from service.http.errors import error_responses
from service.http.schemas import HealthStatus, ModelRef
from service.http.unavailable import NOT_LOADED

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", summary="Liveness probe", response_model=HealthStatus)
async def live() -> HealthStatus:
    return HealthStatus(status="ok")


@router.get(
    "/ready",
    summary="Readiness probe: 200 after model load and warm-up",
    response_model=HealthStatus,
    responses={
        200: {
            "content": {
                "application/json": {
                    "example": {"status": "ready", "ready": True, "model": {"name": "fsd", "version": "0.1.0"}, "device": "cuda:0"}
                }
            }
        },
        **error_responses(503),
    },
)
async def ready(runtime: Runtime, readiness: ReadinessState, unavailable: Unavailability) -> HealthStatus | JSONResponse:
    if not runtime.loaded:
        return unavailable.response("not_ready", NOT_LOADED)
    if readiness.warmup_error is not None:
        return unavailable.response("warmup_failed", f"The warm-up inference failed: {readiness.warmup_error}")
    if not readiness.ready:
        return unavailable.response("not_ready", "The model is loaded but not warmed up yet (or the server is stopping).")
    return HealthStatus(
        status="ready",
        ready=True,
        model=ModelRef(name=runtime.model.name, version=runtime.model.version),
        device=str(runtime.device),
    )
