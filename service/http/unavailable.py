"""The one place a 503 answer is built: the error envelope with ``Retry-After`` from the
``retry_after_s`` setting, and, where the refusal is load, a count in
``fsd_requests_rejected_total{reason}``.

Every "not now" of the service comes through here: the model not loaded or not warmed up yet
(``not_ready``) or its warm-up failed (``warmup_failed``), too many requests at once
(``too_many_requests``), a full inference queue (``queue_full``), a batch out of memory
(``insufficient_memory``), a shutdown under way (``shutting_down``), and intake without room
(``intake_full``, ``delivery_backlog``, ``intake_spool_failed``: :class:`~service.ingest.no_room.NoRoomError`).
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

from service.common.metrics import ServiceMetrics
from service.http.errors import ServiceError, error_response
from service.ingest.no_room import NoRoomError

NOT_LOADED = "The model is not loaded yet."
WARMING_UP = "The model is still warming up; retry shortly."


class Unavailable:
    """Builds 503 answers; it owns only the Retry-After delay and counts refusals in ``metrics``."""

    def __init__(self, retry_after_s: int, metrics: ServiceMetrics) -> None:
        self.retry_after_s = retry_after_s
        self.metrics = metrics

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}

    def error(self, code: str, message: str, *, count_as: str | None = None) -> ServiceError:
        """The 503 to raise; ``count_as`` names the reason it is counted under, if any."""
        if count_as is not None:
            self.metrics.rejected.labels(count_as).inc()
        return ServiceError(503, code, message, headers=self.headers)

    def response(self, code: str, message: str) -> JSONResponse:
        """The same answer as a response (for routes that answer rather than raise)."""
        return error_response(503, code, message, self.headers)

    def no_room(self, refusal: NoRoomError) -> ServiceError:
        """Intake's refusal for now, counted under its reason."""
        return self.error(refusal.reason, refusal.message, count_as=refusal.reason)
