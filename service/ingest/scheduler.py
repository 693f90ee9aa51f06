"""Ingest's hand-over to analysis: the studies that are due, analysed in the background.

STOW-RS and the DICOM node hold accepted instances in the collector (:mod:`.collector`) and
answer at once. A scheduler task on the event loop takes the studies that are due (association
ended, quiet time over) and has analysis analyse them
(:class:`service.analysis.study.StudyAnalyser`), at most ``max_concurrent_studies`` at a time;
a study that arrived over several associations or STOW-RS requests is analysed once, with one
SR. Once a study's analysis is over, the collector frees it (and deletes its intake-spool files,
unless the service stopped before the analysis finished or the SR could not be spooled).

Nothing accepted vanishes silently: a study whose analysis fails (a model failure, images the
model cannot use, an unexpected error) or does not finish before shutdown is counted in
``fsd_studies_analysed_total{outcome="failed"}`` and logged (hashed UIDs only). On shutdown
intake closes first, then every study held is analysed within ``timeout_s``.
"""

from __future__ import annotations

import asyncio
import logging

from fsd.io.dicom import hash_uid
from service.analysis.study import AnalysisError, StudyAnalyser
from service.common.metrics import ServiceMetrics
from service.common.tracebacks import code_locations
from service.ingest.collector import PendingStudy, StudyCollector

logger = logging.getLogger("fsd.service")


class StudyScheduler:
    """Analyses the due studies of ``collector`` with ``analyser``; ``start`` on the event loop.

    It owns the scheduling task and the analyses in progress (at most ``max_concurrent_studies``);
    ``quiet_times`` are the inputs' quiet times, from which it chooses how often to look.
    """

    def __init__(
        self,
        collector: StudyCollector,
        analyser: StudyAnalyser,
        metrics: ServiceMetrics,
        *,
        max_concurrent_studies: int,
        quiet_times: tuple[float, ...],
    ) -> None:
        self.collector = collector
        self.analyser = analyser
        self.metrics = metrics
        quiet = [value for value in quiet_times if value > 0]
        #: how often the scheduler looks for due studies without being woken
        self.tick_s = min(max(min(quiet, default=0.2) / 4, 0.05), 1.0)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._scheduler: asyncio.Task[None] | None = None
        self._analyses: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(max_concurrent_studies)

    def start(self) -> None:
        """Start looking for due studies (on the running event loop)."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._scheduler = asyncio.create_task(self._schedule(), name="fsd-study-scheduler")

    def notify(self) -> None:
        """Something changed (instances arrived, an association ended); safe from any thread."""
        if self._loop is not None and self._wake is not None:
            try:
                self._loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:  # the loop is closed: nothing to wake
                pass

    @property
    def analysing(self) -> int:
        """Studies being analysed (or waiting for an analysis slot)."""
        return len(self._analyses)

    async def stop(self, timeout_s: float) -> None:
        """Accept nothing more, analyse every study held, wait for the analyses (``timeout_s``)."""
        self.collector.close()
        if self._scheduler is not None:
            self._scheduler.cancel()
            await asyncio.gather(self._scheduler, return_exceptions=True)
        for study in self.collector.take_due(everything=True):
            self._start(study)
        if self._analyses:
            _, late = await asyncio.wait(set(self._analyses), timeout=timeout_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def _schedule(self) -> None:
        assert self._wake is not None
        while True:
            for study in self.collector.take_due():
                self._start(study)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.tick_s)
            except asyncio.TimeoutError:
                pass

    def _start(self, study: PendingStudy) -> None:
        task = asyncio.create_task(self._analyse(study), name="fsd-study-analysis")
        self._analyses.add(task)
        task.add_done_callback(self._analyses.discard)

    def _failed(self, study: PendingStudy, why: str) -> None:
        self.metrics.studies.labels(study.source, "failed").inc()
        logger.error(
            "%s study %s (%d accepted instance(s)) not analysed: %s",
            study.source, hash_uid(study.study_instance_uid), len(study.instances), why,
        )

    async def _analyse(self, study: PendingStudy) -> None:
        keep_on_disk = False
        try:
            if study.over_limit:
                logger.warning(
                    "%s study %s: %d instance(s) were refused over the study limits; analysing the %d accepted",
                    study.source, hash_uid(study.study_instance_uid), study.over_limit, len(study.instances),
                )
            async with self._slots:
                analysed = await self.analyser.analyse(study.ordered(), min_score=study.min_score, source=study.source)
            keep_on_disk = not analysed.sr_spooled
        except AnalysisError as failure:
            keep_on_disk = failure.interrupted
            self._failed(study, failure.message)
        except asyncio.CancelledError:
            keep_on_disk = True
            self._failed(study, "the service stopped before its analysis finished")
            raise
        except Exception as error:  # a bug must not lose the study silently
            self._failed(study, f"unexpected {type(error).__name__}")
            logger.error("study analysis failed at\n%s", code_locations(error))
        finally:
            if keep_on_disk and self.collector.spool is not None:
                logger.warning(
                    "%s study %s stays in the intake spool and is analysed after the restart",
                    study.source, hash_uid(study.study_instance_uid),
                )
            self.collector.release(study, keep_on_disk=keep_on_disk)
