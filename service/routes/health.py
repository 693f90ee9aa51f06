"""Liveness and readiness probes (unauthenticated, for orchestrators and load balancers).

``/health/live`` is 200 while the process serves HTTP. ``/health/ready`` is 200 only once the
model is loaded and its warm-up inference ran, and 503 before that and during shutdown.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from service.errors import error_response, error_responses
from service.schemas import HealthStatus, ModelRef

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
async def ready(request: Request) -> HealthStatus | JSONResponse:
    state = getattr(request.app.state, "service", None)
    retry = {"Retry-After": str(request.app.state.settings.retry_after_s)}
    if state is None:
        return error_response(503, "not_ready", "The model is not loaded yet.", retry)
    if state.warmup_error is not None:
        return error_response(503, "warmup_failed", f"The warm-up inference failed: {state.warmup_error}", retry)
    if not state.ready:
        return error_response(503, "not_ready", "The model is loaded but not warmed up yet (or the server is stopping).", retry)
    return HealthStatus(
        status="ready",
        ready=True,
        model=ModelRef(name=state.model.name, version=state.model.version),
        device=str(state.device),
    )
