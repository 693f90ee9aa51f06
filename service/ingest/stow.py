"""STOW-RS intake as PS3.18 defines it: the parts of one request triaged and held, answered with
the store response as soon as they are held; the analysis follows in the background.

The HTTP layer hands over the request's ``application/dicom`` parts. Each part is parsed once
and triaged on its own in the decode pool (:mod:`.instances`, without decoding pixels): not
DICOM, not CT, UIDs missing, another study than the one addressed, a repeat of an earlier part,
or an image that cannot be used go to the FailedSOPSequence with their FailureReason. The
accepted instances go to the collector (:mod:`.collector`), grouped by StudyInstanceUID with
those of earlier requests and of the DICOM node, in memory and, when configured, in the intake
spool before the answer: a study sent over several requests (as Orthanc's DICOMweb client does,
``StowMaxInstances`` per request) is analysed once, ``stow_study_quiet_s`` after its last
instance, with one SR, kept for WADO-RS and queued for the configured destination. A request
may hold instances of several studies and patients: each study is held, analysed and answered
on its own. An instance that would take its study over the study limits is refused (``C001``),
and so is one whose patient is not that of its study's instances received before (``A900``);
the study's other instances are analysed.

Nothing that may pass later is put in the FailedSOPSequence: when the memory for received
instances or the SR delivery queue is full, the intake spool cannot be written, or the service
is stopping, :class:`~.no_room.NoRoomError` refuses the whole request for now and nothing of it
is kept. Uploaded images are never kept beyond their study's analysis.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from service.analysis.pool import DecodePool
from service.analysis.received import ReceivedInstance
from service.analysis.slices import Upload
from service.common.dicom_status import DATA_SET_DOES_NOT_MATCH_SOP_CLASS, DUPLICATE_SOP_INSTANCE, SUCCESS
from service.common.metrics import ServiceMetrics
from service.delivery.outbox import SROutbox
from service.ingest.collector import REFUSAL_REASONS, Arrival, StudyCollector
from service.ingest.instances import Refusal, check, identify, refusal_of
from service.ingest.no_room import delivery_backlog, shutting_down
from service.ingest.scheduler import StudyScheduler
from service.ingest.store_response import store_response

logger = logging.getLogger("fsd.service")


def triage(uploads: list[Upload], study: str | None, max_pixel_bytes: int) -> tuple[list[Arrival], list[Refusal]]:
    """The accepted instances with their bytes (in upload order) and the refused ones, each part
    parsed once and none of its pixels decoded."""
    accepted: list[Arrival] = []
    refused: list[Refusal] = []
    seen: set[str] = set()
    for upload in uploads:
        found = identify(upload.data, upload.label, max_pixel_bytes)
        if isinstance(found, Refusal):
            refused.append(found)
            continue
        if study is not None and found.study_instance_uid != study:
            refused.append(refusal_of(found, DATA_SET_DOES_NOT_MATCH_SOP_CLASS, "belongs to another study than the URL names."))
            continue
        if found.sop_instance_uid in seen:
            refused.append(refusal_of(found, DUPLICATE_SOP_INSTANCE, "repeats an instance sent earlier in this request."))
            continue
        checked = check(found, max_pixel_bytes)
        if isinstance(checked, Refusal):
            refused.append(checked)
            continue
        seen.add(found.sop_instance_uid)
        accepted.append((checked, upload.data))
    return accepted, refused


@dataclass(frozen=True)
class StoreOutcome:
    """One request's store response: its HTTP status and DICOM JSON body."""

    status: int
    document: dict[str, Any]


class StowIntake:
    """Takes STOW-RS requests' instances into ``collector`` and wakes ``scheduler``.

    It owns nothing: the collector, scheduler, decode pool and outbox (asked whether the SR
    queue has room) are the app factory's; ``max_pixel_bytes`` is the pixel budget of one file
    and ``quiet_s`` the quiet time of a study received this way.
    """

    def __init__(
        self,
        collector: StudyCollector,
        scheduler: StudyScheduler,
        pool: DecodePool,
        outbox: SROutbox,
        metrics: ServiceMetrics,
        *,
        max_pixel_bytes: int,
        quiet_s: float,
    ) -> None:
        self.collector = collector
        self.scheduler = scheduler
        self.pool = pool
        self.outbox = outbox
        self.metrics = metrics
        self.max_pixel_bytes = max_pixel_bytes
        self.quiet_s = quiet_s

    def check_room(self) -> None:
        """NoRoomError when a request cannot be taken now (asked before its body is read)."""
        if self.collector.closed:
            raise shutting_down()
        if not self.outbox.has_room():
            raise delivery_backlog(self.outbox.backlog)

    async def store(
        self, uploads: list[Upload], *, study: str | None, min_score: float, base_url: str, deadline: float, started: float
    ) -> StoreOutcome:
        """Triage and hold one request's parts; its store response. NoRoomError when nothing can be held now."""
        self.check_room()
        accepted, refused = await self.pool.run(triage, uploads, study, self.max_pixel_bytes, deadline=deadline)
        del uploads
        held, over = self._hold(accepted, min_score)
        refused = refused + over
        for refusal in refused:
            self.metrics.instances.labels("stow", f"{refusal.status:04X}").inc()
        self.metrics.instances.labels("stow", "0000").inc(len(held))
        status, document = store_response(base_url, held, refused, study)
        logger.info(
            "STOW-RS: %d instance(s) accepted for analysis, %d refused (%s), %.0f ms",
            len(held), len(refused), ",".join(sorted({f"{r.status:04X}" for r in refused})) or "none",
            (time.monotonic() - started) * 1000,
        )
        return StoreOutcome(status, document)

    def _hold(self, accepted: list[Arrival], min_score: float) -> tuple[list[ReceivedInstance], list[Refusal]]:
        """Hand the accepted instances to the collector: those held, and those it refused."""
        if not accepted:
            return [], []
        statuses = self.collector.add(accepted, source="stow", quiet_s=self.quiet_s, min_score=min_score)
        self.scheduler.notify()
        held = [instance for (instance, _), status in zip(accepted, statuses) if status == SUCCESS]
        over = [refusal_of(instance, status, REFUSAL_REASONS[status]) for (instance, _), status in zip(accepted, statuses) if status != SUCCESS]
        return held, over
