"""GET /metrics: Prometheus text exposition of this app's registry (unauthenticated)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description="Requests by route and status, latency, batch sizes, queue depth, slices processed.",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"example": "fsd_queue_depth_slices 0.0\n"}}}},
)
async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
