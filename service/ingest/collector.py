"""Received instances held, grouped by study, until the study is due for analysis.

Both inputs put instances here: the DICOM node one C-STORE at a time on its association
threads, STOW-RS a request's accepted instances at once. A study may come over several
associations and requests (Orthanc's DICOMweb client splits a study into requests of
``StowMaxInstances`` / ``StowMaxSize``; routers send one series at a time). It is *due* once
none of the associations that sent it is open and no instance of it came for its quiet time:
the longest quiet time of the inputs that sent it (``dicom_study_quiet_s``, 0 for "when the
association ends"; ``stow_study_quiet_s`` for STOW-RS, which has no association end to wait for).

Instances are held parsed and checked, not decoded (pixels are decoded at analysis time, in the
decode pool); each counts for its encoded size. With an intake spool (:mod:`.spool`) each is
also written to disk before :meth:`StudyCollector.add` returns, i.e. before it is acknowledged,
and its study's files are deleted once the study's analysis is over (kept when the service
stopped first); :meth:`StudyCollector.restore` holds again, at start-up, every study the spool
kept. Without one, a study acknowledged but not analysed yet is lost if the process dies.

Memory is bounded: ``max_pending_bytes`` over everything held and being analysed, and per study
``max_study_bytes`` and ``max_study_instances``. An instance that would take its study over the
study limits is refused with :data:`~service.common.dicom_status.OVER_LIMIT`, and one whose
patient is not that of its study's instances held before with
:data:`~service.common.dicom_status.DATA_SET_DOES_NOT_MATCH_SOP_CLASS` (both permanent failures:
sending it again cannot help, so senders do not loop); the instances of the study already
accepted stay and are analysed. When everything held is over ``max_pending_bytes``, the spool
cannot be written, or intake is closed for shutdown, :meth:`StudyCollector.add` takes nothing
and raises :class:`~.no_room.NoRoomError`, a transient refusal (C-STORE A700, STOW-RS 503 with
Retry-After). An accepted instance is never dropped.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fsd.io.dicom import hash_uid
from service.analysis.received import ReceivedInstance
from service.common.dicom_status import DATA_SET_DOES_NOT_MATCH_SOP_CLASS, OVER_LIMIT, SUCCESS
from service.common.metrics import ServiceMetrics
from service.ingest.instances import Refusal
from service.ingest.no_room import NoRoomError, shutting_down
from service.ingest.spool import IntakeSpool, SpooledStudy

logger = logging.getLogger("fsd.service")
#: a received instance and its encoded bytes (written to the intake spool before it is acknowledged)
Arrival = tuple[ReceivedInstance, bytes]
#: reads a spooled file back as intake holds it: (data, label) -> ReceivedInstance or why not
Receive = Callable[[bytes, str], "ReceivedInstance | Refusal"]

REFUSAL_REASONS: dict[int, str] = {
    OVER_LIMIT: "its study is over the study limits (settings max_study_instances, max_study_mib).",
    DATA_SET_DOES_NOT_MATCH_SOP_CLASS: "its patient is not the patient of the instances of its study received before.",
}


@dataclass(eq=False)
class PendingStudy:
    """One study's accepted instances (by SOP Instance UID, in arrival order) until its analysis is over.

    ``source`` is the input that sent its first instance ("stow" or "dimse"), ``min_score`` the
    score threshold its SR uses (that of its first instance's input), ``patient`` the digest of
    its patient's identity, ``associations`` the open associations that sent instances of it,
    ``quiet_s`` how long it waits after its last instance, ``size`` its held bytes,
    ``over_limit`` how many of its instances were refused for the study limits, ``batches`` its
    folders in the intake spool and ``writing`` its instances being written there (a study is
    not due while any is).
    """

    study_instance_uid: str
    source: str
    min_score: float
    patient: str | None = None
    instances: dict[str, ReceivedInstance] = field(default_factory=dict)
    associations: set[int] = field(default_factory=set)
    quiet_s: float = 0.0
    last_update: float = 0.0
    size: int = 0
    over_limit: int = 0
    batches: list[str] = field(default_factory=lambda: [uuid.uuid4().hex])
    writing: int = 0

    def ordered(self) -> list[ReceivedInstance]:
        """The instances in the order they arrived."""
        return list(self.instances.values())

    def description(self) -> dict[str, object]:
        """What the intake spool records of the study besides its instances."""
        return {"study_instance_uid": self.study_instance_uid, "source": self.source, "min_score": self.min_score}


@dataclass
class _Reservation:
    """Instances added to a study and not yet on disk (rolled back when the write fails)."""

    study: PendingStudy
    arrivals: list[Arrival] = field(default_factory=list)
    previous: list[ReceivedInstance | None] = field(default_factory=list)


class StudyCollector:
    """Thread-safe holder of the studies received and not analysed yet; owns them (in memory, and
    on disk through ``spool`` when one is given)."""

    def __init__(
        self,
        *,
        max_pending_bytes: int,
        max_study_bytes: int,
        max_study_instances: int,
        metrics: ServiceMetrics,
        spool: IntakeSpool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_pending_bytes = max_pending_bytes
        self.max_study_bytes = max_study_bytes
        self.max_study_instances = max_study_instances
        self.spool = spool
        self._metrics = metrics
        self._clock = clock
        self._lock = threading.Lock()
        self._studies: dict[str, PendingStudy] = {}
        #: bytes held by studies handed out for analysis and not released yet
        self._analysing_bytes = 0
        self._closed = False

    @property
    def pending_bytes(self) -> int:
        """Bytes held: studies waiting and studies being analysed."""
        with self._lock:
            return self._pending_bytes()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called: nothing is accepted any more."""
        return self._closed

    def _pending_bytes(self) -> int:
        return sum(study.size for study in self._studies.values()) + self._analysing_bytes

    def add(
        self,
        arrivals: Sequence[Arrival],
        *,
        source: str,
        quiet_s: float,
        min_score: float,
        association: int | None = None,
    ) -> list[int]:
        """Hold ``arrivals`` (all or none) and return their statuses: SUCCESS, OVER_LIMIT, or
        DATA_SET_DOES_NOT_MATCH_SOP_CLASS for another patient. Raises NoRoomError (holding
        nothing) when closed, over ``max_pending_bytes``, or when the spool cannot be written."""
        with self._lock:
            if self._closed:
                raise shutting_down()
            growth = 0
            for instance, _ in arrivals:
                study = self._studies.get(instance.study_instance_uid)
                previous = study.instances.get(instance.sop_instance_uid) if study is not None else None
                growth += instance.size - (previous.size if previous is not None else 0)
            if growth > 0 and self._pending_bytes() + growth > self.max_pending_bytes:
                raise NoRoomError(
                    "intake_full",
                    f"The memory for received instances is full (setting max_pending_mib, {self.max_pending_bytes / 2**20:g} MiB); "
                    "retry later.",
                )
            reservations: dict[str, _Reservation] = {}
            statuses = [self._add_one(arrival, source, quiet_s, min_score, association, reservations) for arrival in arrivals]
            self._update_metrics()
        if self.spool is not None and reservations:
            self._write(list(reservations.values()))
        with self._lock:
            now = self._clock()
            for reservation in reservations.values():
                reservation.study.writing -= len(reservation.arrivals)
                reservation.study.last_update = now
        return statuses

    def _add_one(
        self,
        arrival: Arrival,
        source: str,
        quiet_s: float,
        min_score: float,
        association: int | None,
        reservations: dict[str, _Reservation],
    ) -> int:
        instance = arrival[0]
        uid = instance.study_instance_uid
        study = self._studies.get(uid)
        if study is None:
            study = self._studies[uid] = PendingStudy(uid, source, min_score, patient=instance.patient)
        if association is not None:
            study.associations.add(association)
        study.quiet_s = max(study.quiet_s, quiet_s)
        study.last_update = self._clock()
        previous = study.instances.get(instance.sop_instance_uid)
        growth = instance.size - (previous.size if previous is not None else 0)
        count = len(study.instances) + (previous is None)
        status = SUCCESS
        if instance.patient != study.patient:
            status = DATA_SET_DOES_NOT_MATCH_SOP_CLASS
        elif count > self.max_study_instances or study.size + growth > self.max_study_bytes:
            status = OVER_LIMIT
            study.over_limit += 1
        if status != SUCCESS:
            if not study.instances and not study.associations and not study.writing:
                del self._studies[uid]
            return status
        study.instances[instance.sop_instance_uid] = instance
        study.size += growth
        study.writing += 1
        reservation = reservations.setdefault(uid, _Reservation(study))
        reservation.arrivals.append(arrival)
        reservation.previous.append(previous)
        return SUCCESS

    def _write(self, reservations: list[_Reservation]) -> None:
        """Put reserved instances on disk; on failure take every one of them back and refuse."""
        assert self.spool is not None
        written: list[tuple[str, list[str]]] = []
        try:
            for reservation in reservations:
                study = reservation.study
                uids = [instance.sop_instance_uid for instance, _ in reservation.arrivals]
                written.append((study.batches[0], uids))
                self.spool.write(study.batches[0], study.description(), [(uid, data) for uid, (_, data) in zip(uids, reservation.arrivals)])
        except OSError as error:
            logger.error("intake spool: %d instance(s) not written (%s); refused for now", sum(len(r.arrivals) for r in reservations), type(error).__name__)
            for batch, uids in written:
                try:
                    self.spool.remove(batch, uids)
                except OSError:
                    pass
            with self._lock:
                for reservation in reservations:
                    self._roll_back(reservation)
                self._update_metrics()
            raise NoRoomError(
                "intake_spool_failed", "The received instances cannot be kept on disk (intake spool); retry later."
            ) from None

    def _roll_back(self, reservation: _Reservation) -> None:
        study = reservation.study
        for (instance, _), previous in zip(reversed(reservation.arrivals), reversed(reservation.previous)):
            study.size -= instance.size - (previous.size if previous is not None else 0)
            if previous is None:
                study.instances.pop(instance.sop_instance_uid, None)
            else:
                study.instances[instance.sop_instance_uid] = previous
        study.writing -= len(reservation.arrivals)
        if not study.instances and not study.associations and not study.writing:
            self._studies.pop(study.study_instance_uid, None)

    def association_ended(self, association: int) -> None:
        """``association`` closed: its studies may become due (studies left empty are forgotten)."""
        with self._lock:
            for uid, study in list(self._studies.items()):
                study.associations.discard(association)
                if not study.associations and not study.instances and not study.writing:
                    del self._studies[uid]
            self._update_metrics()

    def take_due(self, *, everything: bool = False) -> list[PendingStudy]:
        """Remove and return the studies due for analysis (``everything``: all that hold instances)."""
        now = self._clock()
        with self._lock:
            due = [
                study
                for study in self._studies.values()
                if study.instances
                and not study.writing
                and (everything or (not study.associations and now - study.last_update >= study.quiet_s))
            ]
            for study in due:
                del self._studies[study.study_instance_uid]
                self._analysing_bytes += study.size
            self._update_metrics()
            return due

    def release(self, study: PendingStudy, *, keep_on_disk: bool = False) -> None:
        """The analysis of ``study`` is over: its memory is free again, and its spooled files are
        deleted unless ``keep_on_disk`` (the service stopped before the analysis finished)."""
        with self._lock:
            self._analysing_bytes -= study.size
            study.instances.clear()
            self._update_metrics()
        if self.spool is not None and not keep_on_disk:
            for batch in study.batches:
                self.spool.remove_batch(batch)

    def restore(self, receive: Receive) -> int:
        """Hold again every study the intake spool kept (due at once, whatever the limits: they
        were acknowledged); ``receive`` reads each file back. Returns how many studies."""
        if self.spool is None:
            return 0
        restored = 0
        for spooled in self.spool.batches():
            instances = self._read_back(spooled, receive)
            if not instances:
                logger.error("intake spool: no instance of batch %s can be read back; left in place", spooled.batch)
                continue
            with self._lock:
                study = self._studies.get(spooled.study_instance_uid)
                if study is None:
                    study = PendingStudy(spooled.study_instance_uid, spooled.source, spooled.min_score, batches=[])
                    self._studies[spooled.study_instance_uid] = study
                    restored += 1
                study.batches.append(spooled.batch)
                for instance in instances:
                    study.patient = study.patient or instance.patient
                    previous = study.instances.get(instance.sop_instance_uid)
                    study.size += instance.size - (previous.size if previous is not None else 0)
                    study.instances[instance.sop_instance_uid] = instance
                study.last_update = float("-inf")
                self._update_metrics()
        if restored:
            self._metrics.resumed.inc(restored)
            logger.warning("intake spool: %d study(ies) acknowledged before the restart are analysed now", restored)
        return restored

    def _read_back(self, spooled: SpooledStudy, receive: Receive) -> list[ReceivedInstance]:
        instances = []
        for number, path in enumerate(spooled.files, start=1):
            label = f"spooled instance {number}"
            try:
                found = receive(path.read_bytes(), label)
            except OSError as error:
                logger.error("intake spool: %s of study %s cannot be read (%s)", label, hash_uid(spooled.study_instance_uid), type(error).__name__)
                continue
            if isinstance(found, Refusal):
                logger.error("intake spool: %s of study %s is unusable now (%04X)", label, hash_uid(spooled.study_instance_uid), found.status)
                continue
            instances.append(found)
        return instances

    def close(self) -> None:
        """Accept nothing any more (shutdown); what is held can still be taken."""
        with self._lock:
            self._closed = True

    def _update_metrics(self) -> None:
        self._metrics.pending_bytes.set(self._pending_bytes())
        self._metrics.pending_studies.set(sum(1 for study in self._studies.values() if study.instances))
