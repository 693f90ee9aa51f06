"""The DICOM node: a pynetdicom C-ECHO and C-STORE SCP started and stopped with the app.

Access: DIMSE has no user authentication, so an association is accepted only from the
configured calling AE titles (and, when given, IP addresses), addressed to the node's own AE
title; anything else gets an A-ASSOCIATE-RJ. Malformed PDUs are pynetdicom's to abort; a
handler never lets an exception out.

C-STORE: each instance is parsed once and checked on the association thread without decoding
its pixels (:mod:`service.ingest.instances`: CT only, readable, under the pixel budget) and
handed to the collector (:mod:`service.ingest.collector`), which holds it in memory and, when
configured, writes it to the intake spool before the success status is sent. Refusals: the
instance's own status when it cannot be used (``0122``, ``A900``, ``C122``, ``C001`` over the
pixel budget), ``C001`` (permanent) when it would take its study over the study limits, ``A900``
when its patient is not that of its study's instances received before, and ``A700`` (retry
later) while the memory for received instances or the SR delivery queue is full, or the intake
spool cannot be written. An instance answered ``0000`` is analysed. pynetdicom receives into
memory (``STORE_RECV_CHUNKED_DATASET`` stays off); only the intake spool, when configured,
writes received instances to disk. A study is analysed in the background once due (its
association ended, or after ``dicom_study_quiet_s``), through the same scheduler, analysis and
batcher as STOW-RS and HTTP requests.

Shutdown: :meth:`DicomNode.stop` first marks the node stopping (new associations are rejected
as transient, new C-STOREs answered A700, so senders try again later), then aborts the open
associations (their senders see the abort and send the rest again later) and stops listening;
only then does the app close intake and analyse what was received. No study is analysed while
an association may still be adding to it, and nothing is acknowledged after intake closed.

Logs name hashed UIDs, AE titles and addresses of peers, never patient attributes; pynetdicom's
own loggers are kept at WARNING and its identifier dumps off.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from pynetdicom import AE, _config, evt
from pynetdicom.sop_class import Verification

from fsd.io.dicom import hash_uid
from service.common.dicom_status import OUT_OF_RESOURCES, SUCCESS, hex_status
from service.common.metrics import ServiceMetrics
from service.delivery.outbox import SROutbox
from service.ingest.collector import REFUSAL_REASONS, StudyCollector
from service.ingest.instances import Refusal, receive
from service.ingest.no_room import NoRoomError
from service.ingest.scheduler import StudyScheduler
from service.ingest.storage_contexts import STORAGE_SOP_CLASSES, storage_transfer_syntaxes

logger = logging.getLogger("fsd.service.dicom")

#: A-ASSOCIATE-RJ parameters (PS3.8 9.3.4): rejected permanent or transient, by the service user
_REJECT_PERMANENT, _REJECT_TRANSIENT, _SERVICE_USER = 0x01, 0x02, 0x01
_NO_REASON, _CALLING_AE_NOT_RECOGNISED, _CALLED_AE_NOT_RECOGNISED = 0x01, 0x03, 0x07


def quiet_library_logs() -> None:
    """pynetdicom's INFO/DEBUG records and identifier dumps may name patient attributes."""
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    _config.LOG_HANDLER_LEVEL = "none"


@dataclass(frozen=True)
class DicomNodeConfig:
    """What the node is told: its AE title and address, who may call it, its limits, and what a
    received study gets (its quiet time and score threshold)."""

    ae_title: str
    bind_host: str
    port: int
    allowed_calling_ae_titles: frozenset[str]
    allowed_hosts: frozenset[str]
    max_associations: int
    timeout_s: float
    max_pixel_bytes: int
    study_quiet_s: float
    min_score: float


class DicomNode:
    """One C-ECHO / C-STORE SCP; it owns its pynetdicom server and hands what it receives to
    ``collector`` (waking ``scheduler``), refusing for now while ``outbox`` has no room."""

    def __init__(
        self,
        config: DicomNodeConfig,
        collector: StudyCollector,
        scheduler: StudyScheduler,
        outbox: SROutbox,
        metrics: ServiceMetrics,
    ) -> None:
        self.config = config
        self.collector = collector
        self.scheduler = scheduler
        self.outbox = outbox
        self.metrics = metrics
        self._server: Any = None
        self._stopping = False
        self.port: int | None = None

    # ------------------------------------------------------------------ life cycle (event loop)

    def _application_entity(self) -> AE:
        config = self.config
        ae = AE(ae_title=config.ae_title)
        ae.add_supported_context(Verification)
        for sop_class in STORAGE_SOP_CLASSES:
            ae.add_supported_context(sop_class, storage_transfer_syntaxes())
        ae.maximum_associations = config.max_associations
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = config.timeout_s
        return ae

    def start(self) -> None:
        """Listen on the configured address (raises OSError when the port is taken)."""
        quiet_library_logs()
        if _config.STORE_RECV_CHUNKED_DATASET:
            raise RuntimeError("pynetdicom is configured to spool received datasets to disk")
        config = self.config
        handlers = [
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_CONN_CLOSE, self._on_closed),
        ]
        self._server = self._application_entity().start_server(
            (config.bind_host, config.port), block=False, evt_handlers=handlers
        )
        self.port = int(self._server.server_address[1])
        logger.info(
            "DICOM node %s listening on %s:%d (calling AE titles: %s)",
            config.ae_title, config.bind_host, self.port, ", ".join(sorted(config.allowed_calling_ae_titles)),
        )

    async def stop(self) -> None:
        """Refuse new associations and C-STOREs, abort the open associations, stop listening; what
        was received is then the scheduler's to analyse."""
        self._stopping = True
        if self._server is not None:
            await asyncio.to_thread(self._abort_and_shut_down)
        logger.info("DICOM node stopped")

    def _abort_and_shut_down(self) -> None:
        open_associations = list(self._server.active_associations)
        for association in open_associations:
            association.abort()
        if open_associations:
            logger.warning("DICOM node stopping: %d open association(s) aborted", len(open_associations))
        self._server.shutdown()

    # ------------------------------------------------------------------ association threads

    def _on_requested(self, event: evt.Event) -> None:
        assoc = event.assoc
        calling = str(assoc.requestor.primitive.calling_ae_title).strip()
        called = str(assoc.requestor.primitive.called_ae_title).strip()
        address = str(assoc.requestor.address)
        reason, result = None, _REJECT_PERMANENT
        if self._stopping:
            reason, result, outcome = _NO_REASON, _REJECT_TRANSIENT, "rejected_stopping"
        elif self.config.allowed_hosts and address not in self.config.allowed_hosts:
            reason, outcome = _NO_REASON, "rejected_host"
        elif calling not in self.config.allowed_calling_ae_titles:
            reason, outcome = _CALLING_AE_NOT_RECOGNISED, "rejected_calling_ae_title"
        elif called != self.config.ae_title:
            reason, outcome = _CALLED_AE_NOT_RECOGNISED, "rejected_called_ae_title"
        if reason is None:
            self.metrics.associations.labels("accepted").inc()
            return
        self.metrics.associations.labels(outcome).inc()
        logger.warning("association from %s (calling AE %r) refused: %s", address, calling, outcome)
        assoc.acse.send_reject(result, _SERVICE_USER, reason)
        assoc.kill()  # as pynetdicom does after its own rejections: lets the DUL send the A-ASSOCIATE-RJ first

    def _on_echo(self, event: evt.Event) -> int:
        return SUCCESS

    def _on_store(self, event: evt.Event) -> int:
        try:
            status = self._store(event)
        except Exception as error:  # never let a handler fail the association thread
            logger.error("C-STORE handler failed: %s", type(error).__name__)
            status = OUT_OF_RESOURCES
        self.metrics.instances.labels("dimse", f"{status:04X}").inc()
        return status

    def _store(self, event: evt.Event) -> int:
        if self._stopping:
            return OUT_OF_RESOURCES
        if not self.outbox.has_room():
            return OUT_OF_RESOURCES
        data = event.encoded_dataset(include_meta=True)
        checked = receive(data, "C-STORE instance", self.config.max_pixel_bytes)
        if isinstance(checked, Refusal):
            logger.warning("C-STORE refused with %s: %s", hex_status(checked.status), checked.message)
            return checked.status
        try:
            (status,) = self.collector.add(
                [(checked, data)], source="dimse", quiet_s=self.config.study_quiet_s, min_score=self.config.min_score,
                association=id(event.assoc),
            )
        except NoRoomError as refusal:
            logger.warning(
                "C-STORE refused with %s: %s (study %s)",
                hex_status(OUT_OF_RESOURCES), refusal.reason, hash_uid(checked.study_instance_uid),
            )
            return OUT_OF_RESOURCES
        if status != SUCCESS:
            logger.warning(
                "C-STORE refused with %s: %s (study %s)",
                hex_status(status), REFUSAL_REASONS[status].rstrip("."), hash_uid(checked.study_instance_uid),
            )
        return status

    def _on_closed(self, event: evt.Event) -> None:
        self.collector.association_ended(id(event.assoc))
        self.scheduler.notify()
