"""From received instances to analysed studies, in the background, for both inputs.

STOW-RS and the DICOM node hand accepted instances to :attr:`StudyPipeline.collector`
(:mod:`service.study_collector`) and answer at once. A scheduler task on the event loop takes
the studies that are due (association ended, quiet time over) and analyses them
(:func:`service.study_analysis.analyse_study`), at most ``max_concurrent_studies`` at a time;
a study that arrived over several associations or STOW-RS requests is analysed once, with one
SR.

Nothing accepted vanishes silently: a study whose analysis fails (a model failure, images the
model cannot use, an unexpected error) or does not finish before shutdown is counted in
``fsd_studies_analysed_total{outcome="failed"}`` and logged (hashed UIDs only). On shutdown
intake closes first, then every study held is analysed within ``timeout_s``.
"""

from __future__ import annotations

import asyncio
import logging

from fsd.io.dicom import hash_uid
from service.errors import code_locations
from service.state import ServiceState
from service.study_analysis import AnalysisError, analyse_study
from service.study_collector import PendingStudy, StudyCollector

logger = logging.getLogger("fsd.service")


class StudyPipeline:
    """The collector of received studies and the analyses of the due ones; ``start`` on the event loop."""

    def __init__(self, state: ServiceState) -> None:
        settings = state.settings
        self.state = state
        self.collector = StudyCollector(
            max_pending_bytes=settings.max_pending_bytes,
            max_study_bytes=settings.max_study_bytes,
            max_study_instances=settings.max_study_instances,
            metrics=state.metrics,
        )
        quiet = [value for value in (settings.dicom_study_quiet_s, settings.stow_study_quiet_s) if value > 0]
        #: how often the scheduler looks for due studies without being woken
        self.tick_s = min(max(min(quiet, default=0.2) / 4, 0.05), 1.0)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._scheduler: asyncio.Task[None] | None = None
        self._analyses: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(settings.max_concurrent_studies)

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
        self.state.metrics.studies.labels(study.source, "failed").inc()
        logger.error(
            "%s study %s (%d accepted instance(s)) not analysed: %s",
            study.source, hash_uid(study.study_instance_uid), len(study.instances), why,
        )

    async def _analyse(self, study: PendingStudy) -> None:
        try:
            if study.over_limit:
                logger.warning(
                    "%s study %s: %d instance(s) were refused over the study limits; analysing the %d accepted",
                    study.source, hash_uid(study.study_instance_uid), study.over_limit, len(study.instances),
                )
            async with self._slots:
                await analyse_study(self.state, study.ordered(), min_score=study.min_score, source=study.source)
        except AnalysisError as failure:
            self._failed(study, failure.message)
        except asyncio.CancelledError:
            self._failed(study, "the service stopped before its analysis finished")
            raise
        except Exception as error:  # a bug must not lose the study silently
            self._failed(study, f"unexpected {type(error).__name__}")
            logger.error("study analysis failed at\n%s", code_locations(error))
        finally:
            self.collector.release(study)
