"""The DICOM node: a pynetdicom C-ECHO and C-STORE SCP started and stopped with the app.

Access: DIMSE has no user authentication, so an association is accepted only from the
configured calling AE titles (and, when given, IP addresses), addressed to the node's own AE
title; anything else gets an A-ASSOCIATE-RJ. Malformed PDUs are pynetdicom's to abort; a
handler never lets an exception out.

C-STORE: each instance is triaged (:mod:`service.instances`: CT only, decodable, under the pixel
budget) and held in memory by the :class:`~service.dimse.collector.StudyCollector` (bounded;
A700 when full, or when the SR delivery queue is). Nothing is written to disk: pynetdicom
receives into memory (``STORE_RECV_CHUNKED_DATASET`` stays off). A study is analysed on the
app's event loop once due (its association ended, or after the quiet time), through the same
batcher as HTTP requests, at most ``max_concurrent_studies`` at a time; an analysis that fails
for a transient reason (queue full, out of memory) is retried.

Logs name hashed UIDs, AE titles and addresses of peers, never patient attributes; pynetdicom's
own loggers are kept at WARNING and its identifier dumps off.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pynetdicom import AE, _config, evt
from pynetdicom.sop_class import Verification

from fsd.io.dicom import hash_uid
from service.dicom_status import OUT_OF_RESOURCES, SUCCESS, hex_status
from service.dimse.collector import PendingStudy, StudyCollector
from service.dimse.contexts import STORAGE_SOP_CLASSES, storage_transfer_syntaxes
from service.instances import Refusal, decode, identify
from service.state import ServiceState
from service.study_analysis import AnalysisError, analyse_study

logger = logging.getLogger("fsd.service.dicom")

#: A-ASSOCIATE-RJ parameters (PS3.8 9.3.4): rejected-permanent by the service user
_REJECT_PERMANENT, _SERVICE_USER = 0x01, 0x01
_NO_REASON, _CALLING_AE_NOT_RECOGNISED, _CALLED_AE_NOT_RECOGNISED = 0x01, 0x03, 0x07
#: retries of an analysis that failed for a transient reason, and the pause between them
ANALYSIS_ATTEMPTS = 8
ANALYSIS_RETRY_S = 2.0


def quiet_library_logs() -> None:
    """pynetdicom's INFO/DEBUG records and identifier dumps may name patient attributes."""
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    _config.LOG_HANDLER_LEVEL = "none"


class DicomNode:
    """One C-ECHO / C-STORE SCP sharing ``state`` (batcher, limits, SR store, delivery)."""

    def __init__(self, state: ServiceState) -> None:
        settings = state.settings
        self.state = state
        self.collector = StudyCollector(
            max_pending_bytes=settings.max_pending_bytes,
            max_study_bytes=settings.max_request_bytes,
            max_study_instances=settings.max_files,
            quiet_s=settings.dicom_study_quiet_s,
            metrics=state.metrics,
        )
        self._allowed_titles = frozenset(settings.dicom_allowed_calling_ae_titles)
        self._allowed_hosts = frozenset(settings.dicom_allowed_hosts)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._server: Any = None
        self._scheduler: asyncio.Task[None] | None = None
        self._analyses: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(settings.max_concurrent_studies)
        self.port: int | None = None

    # ------------------------------------------------------------------ life cycle (event loop)

    def _application_entity(self) -> AE:
        settings = self.state.settings
        ae = AE(ae_title=settings.dicom_ae_title)
        ae.add_supported_context(Verification)
        for sop_class in STORAGE_SOP_CLASSES:
            ae.add_supported_context(sop_class, storage_transfer_syntaxes())
        ae.maximum_associations = settings.dicom_max_associations
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = settings.dicom_timeout_s
        return ae

    def start(self) -> None:
        """Listen on the configured address (raises OSError when the port is taken)."""
        quiet_library_logs()
        if _config.STORE_RECV_CHUNKED_DATASET:
            raise RuntimeError("pynetdicom is configured to spool received datasets to disk")
        settings = self.state.settings
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        handlers = [
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_CONN_CLOSE, self._on_closed),
        ]
        self._server = self._application_entity().start_server(
            (settings.dicom_bind_host, settings.dicom_port), block=False, evt_handlers=handlers
        )
        self.port = int(self._server.server_address[1])
        self._scheduler = asyncio.create_task(self._schedule(), name="fsd-dicom-scheduler")
        logger.info(
            "DICOM node %s listening on %s:%d (calling AE titles: %s)",
            settings.dicom_ae_title, settings.dicom_bind_host, self.port, ", ".join(sorted(self._allowed_titles)),
        )

    async def stop(self, timeout_s: float) -> None:
        """Stop listening, analyse what was received, wait for running analyses (``timeout_s``)."""
        if self._server is not None:
            await asyncio.to_thread(self._server.shutdown)
        if self._scheduler is not None:
            self._scheduler.cancel()
            await asyncio.gather(self._scheduler, return_exceptions=True)
        for study in self.collector.take_due(everything=True):
            self._start_analysis(study)
        if self._analyses:
            _, late = await asyncio.wait(set(self._analyses), timeout=timeout_s)
            for task in late:
                task.cancel()
            if late:
                logger.error("%d study analysis(es) did not finish before shutdown", len(late))
        logger.info("DICOM node stopped")

    # ------------------------------------------------------------------ association threads

    def _notify(self) -> None:
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def _on_requested(self, event: evt.Event) -> None:
        assoc = event.assoc
        calling = str(assoc.requestor.primitive.calling_ae_title).strip()
        called = str(assoc.requestor.primitive.called_ae_title).strip()
        address = str(assoc.requestor.address)
        reason = None
        if self._allowed_hosts and address not in self._allowed_hosts:
            reason, outcome = _NO_REASON, "rejected_host"
        elif calling not in self._allowed_titles:
            reason, outcome = _CALLING_AE_NOT_RECOGNISED, "rejected_calling_ae_title"
        elif called != self.state.settings.dicom_ae_title:
            reason, outcome = _CALLED_AE_NOT_RECOGNISED, "rejected_called_ae_title"
        if reason is None:
            self.state.metrics.associations.labels("accepted").inc()
            return
        self.state.metrics.associations.labels(outcome).inc()
        logger.warning("association from %s (calling AE %r) refused: %s", address, calling, outcome)
        assoc.acse.send_reject(_REJECT_PERMANENT, _SERVICE_USER, reason)
        assoc.kill()  # as pynetdicom does after its own rejections: lets the DUL send the A-ASSOCIATE-RJ first

    def _on_echo(self, event: evt.Event) -> int:
        return SUCCESS

    def _on_store(self, event: evt.Event) -> int:
        try:
            return self._store(event)
        except Exception as error:  # never let a handler fail the association thread
            logger.error("C-STORE handler failed: %s", type(error).__name__)
            self.state.metrics.instances.labels("dimse", f"{OUT_OF_RESOURCES:04X}").inc()
            return OUT_OF_RESOURCES

    def _store(self, event: evt.Event) -> int:
        metrics = self.state.metrics
        delivery = self.state.delivery
        if delivery is not None and not delivery.has_room():
            metrics.instances.labels("dimse", f"{OUT_OF_RESOURCES:04X}").inc()
            return OUT_OF_RESOURCES
        data = event.encoded_dataset(include_meta=True)
        found = identify(data, "C-STORE instance")
        decoded = found if isinstance(found, Refusal) else decode(found, self.state.settings.max_pixel_bytes_per_file)
        if isinstance(decoded, Refusal):
            metrics.instances.labels("dimse", f"{decoded.status:04X}").inc()
            logger.warning("C-STORE refused with %s: %s", hex_status(decoded.status), decoded.message)
            return decoded.status
        status = self.collector.add(id(event.assoc), decoded)
        metrics.instances.labels("dimse", f"{status:04X}").inc()
        if status != SUCCESS:
            logger.warning(
                "C-STORE refused with %s: study %s is over the memory or size limits",
                hex_status(status), hash_uid(decoded.instance.study_instance_uid),
            )
        return status

    def _on_closed(self, event: evt.Event) -> None:
        self.collector.association_ended(id(event.assoc))
        self._notify()

    # ------------------------------------------------------------------ analysis (event loop)

    async def _schedule(self) -> None:
        assert self._wake is not None
        tick = min(max(self.collector.quiet_s / 4, 0.05), 1.0)
        while True:
            for study in self.collector.take_due():
                self._start_analysis(study)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), tick)
            except asyncio.TimeoutError:
                pass

    def _start_analysis(self, study: PendingStudy) -> None:
        task = asyncio.create_task(self._analyse(study), name="fsd-dicom-study")
        self._analyses.add(task)
        task.add_done_callback(self._analyses.discard)

    async def _analyse(self, study: PendingStudy) -> None:
        settings = self.state.settings
        try:
            async with self._slots:
                for attempt in range(1, ANALYSIS_ATTEMPTS + 1):
                    try:
                        await analyse_study(
                            self.state, study.ordered(), min_score=settings.min_score,
                            timeout_s=settings.request_timeout_s, source="dimse",
                        )
                        return
                    except AnalysisError as failure:
                        if not failure.transient or attempt == ANALYSIS_ATTEMPTS:
                            self.state.metrics.studies.labels("dimse", "failed").inc()
                            logger.error(
                                "study %s (%d instance(s)) not analysed: %s",
                                hash_uid(study.study_instance_uid), len(study.instances), failure.message,
                            )
                            return
                        logger.warning(
                            "study %s: %s; retrying (attempt %d)", hash_uid(study.study_instance_uid), failure.message, attempt
                        )
                    await asyncio.sleep(ANALYSIS_RETRY_S * attempt)
        finally:
            self.collector.release(study)
