"""One STOW-RS request from body to store response (``POST /v1/studies[/{study}]``).

readiness -> admission -> room in intake (asked before the body is read) -> body under the size
limit -> ``application/dicom`` parts -> ingest (:class:`~service.ingest.stow.StowIntake`: triage,
hold, the PS3.18 store response). No room for now (:class:`~service.ingest.no_room.NoRoomError`)
is a 503 with Retry-After and keeps nothing of the request.
"""

from __future__ import annotations

import time

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from service.analysis.batcher import DeadlineExceededError
from service.http.admission import Admission
from service.http.body import read_body
from service.http.detection import deadline_exceeded
from service.http.readiness import Readiness
from service.http.unavailable import WARMING_UP, Unavailable
from service.http.uploads import stow_uploads
from service.ingest.no_room import NoRoomError
from service.ingest.store_response import MEDIA_TYPE
from service.ingest.stow import StowIntake


class StoreRequests:
    """Answers STOW-RS requests with the parts it is given (it owns none of them): ingest's STOW-RS
    intake, the admission cap, readiness and the 503 builder; ``max_request_bytes``,
    ``max_files``, ``timeout_s`` and ``public_url`` are the settings of the same names."""

    def __init__(
        self,
        intake: StowIntake,
        admission: Admission,
        readiness: Readiness,
        unavailable: Unavailable,
        *,
        max_request_bytes: int,
        max_files: int,
        timeout_s: float,
        public_url: str | None,
    ) -> None:
        self.intake = intake
        self.admission = admission
        self.readiness = readiness
        self.unavailable = unavailable
        self.max_request_bytes = max_request_bytes
        self.max_files = max_files
        self.timeout_s = timeout_s
        self.public_url = public_url

    def base_url(self, request: Request) -> str:
        """Where clients reach this server: the ``public_url`` setting, else the request's own base URL."""
        return self.public_url or str(request.base_url).rstrip("/")

    async def answer(self, request: Request, study: str | None, min_score: float) -> Response:
        """The whole life of a STOW-RS request answered with the store response."""
        started = time.monotonic()
        if not self.readiness.ready:
            raise self.unavailable.error("not_ready", WARMING_UP)
        with self.admission.slot():
            try:
                self.intake.check_room()
                body = await read_body(request, self.max_request_bytes)
                uploads = stow_uploads(body, request.headers.get("content-type"), self.max_files)
                del body
                outcome = await self.intake.store(
                    uploads, study=study, min_score=min_score, base_url=self.base_url(request),
                    deadline=started + self.timeout_s, started=started,
                )
            except NoRoomError as refusal:
                raise self.unavailable.no_room(refusal) from None
            except DeadlineExceededError:
                raise deadline_exceeded(self.timeout_s) from None
        return JSONResponse(outcome.document, status_code=outcome.status, media_type=MEDIA_TYPE)
