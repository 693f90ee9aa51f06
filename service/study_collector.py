"""Received instances held in memory, grouped by study, until the study is due for analysis.

Both inputs put instances here: the DICOM node one C-STORE at a time on its association
threads, STOW-RS a request's accepted instances at once. A study may come over several
associations and requests (Orthanc's DICOMweb client splits a study into requests of
``StowMaxInstances`` / ``StowMaxSize``; routers send one series at a time). It is *due* once
none of the associations that sent it is open and no instance of it came for its quiet time:
the longest quiet time of the inputs that sent it (``dicom_study_quiet_s``, 0 for "when the
association ends"; ``stow_study_quiet_s`` for STOW-RS, which has no association end to wait for).

Only the encoded bytes are held; pixels are decoded at analysis time, in the decode pool.
Memory is bounded: ``max_pending_bytes`` over everything held and being analysed, and per study
``max_study_bytes`` and ``max_study_instances``. An instance that would take its study over the
study limits is refused with :data:`~service.dicom_status.OVER_LIMIT` (a permanent failure:
sending it again cannot help, so senders do not loop); the instances of the study already
accepted stay and are analysed. When everything held is over ``max_pending_bytes`` (or intake
is closed for shutdown), :meth:`StudyCollector.add` takes nothing and returns None, a transient
refusal (C-STORE A700, STOW-RS 503 with Retry-After). An accepted instance is never dropped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from service.dicom_status import OVER_LIMIT, SUCCESS
from service.instances import Instance
from service.metrics import ServiceMetrics


def held_bytes(instance: Instance) -> int:
    """The memory one held instance counts for: its encoded bytes (it is decoded at analysis only)."""
    return len(instance.data)


@dataclass(eq=False)
class PendingStudy:
    """One study's accepted instances (by SOP Instance UID, in arrival order) until its analysis is over.

    ``source`` is the input that sent its first instance ("stow" or "dimse"), ``min_score`` the
    score threshold its SR uses (that of its first instance's input), ``associations`` the open
    associations that sent instances of it, ``quiet_s`` how long it waits after its last
    instance, ``size`` its held bytes, and ``over_limit`` how many of its instances were
    refused for the study limits.
    """

    study_instance_uid: str
    source: str
    min_score: float
    instances: dict[str, Instance] = field(default_factory=dict)
    associations: set[int] = field(default_factory=set)
    quiet_s: float = 0.0
    last_update: float = 0.0
    size: int = 0
    over_limit: int = 0

    def ordered(self) -> list[Instance]:
        """The instances in the order they arrived."""
        return list(self.instances.values())


class StudyCollector:
    """Thread-safe holder of the studies received and not analysed yet."""

    def __init__(
        self,
        *,
        max_pending_bytes: int,
        max_study_bytes: int,
        max_study_instances: int,
        metrics: ServiceMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_pending_bytes = max_pending_bytes
        self.max_study_bytes = max_study_bytes
        self.max_study_instances = max_study_instances
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
        instances: Sequence[Instance],
        *,
        source: str,
        quiet_s: float,
        min_score: float,
        association: int | None = None,
    ) -> list[int] | None:
        """Hold ``instances`` (all or none); their statuses (SUCCESS or OVER_LIMIT), or None when
        closed or when they do not fit ``max_pending_bytes`` (nothing is held then)."""
        with self._lock:
            if self._closed:
                return None
            growth = 0
            for instance in instances:
                study = self._studies.get(instance.study_instance_uid)
                previous = study.instances.get(instance.sop_instance_uid) if study is not None else None
                growth += held_bytes(instance) - (held_bytes(previous) if previous is not None else 0)
            if growth > 0 and self._pending_bytes() + growth > self.max_pending_bytes:
                return None
            statuses = [self._add_one(instance, source, quiet_s, min_score, association) for instance in instances]
            self._update_metrics()
            return statuses

    def _add_one(self, instance: Instance, source: str, quiet_s: float, min_score: float, association: int | None) -> int:
        uid = instance.study_instance_uid
        study = self._studies.get(uid)
        if study is None:
            study = self._studies[uid] = PendingStudy(uid, source, min_score)
        if association is not None:
            study.associations.add(association)
        study.quiet_s = max(study.quiet_s, quiet_s)
        study.last_update = self._clock()
        previous = study.instances.get(instance.sop_instance_uid)
        growth = held_bytes(instance) - (held_bytes(previous) if previous is not None else 0)
        count = len(study.instances) + (previous is None)
        if count > self.max_study_instances or study.size + growth > self.max_study_bytes:
            study.over_limit += 1
            if not study.instances and not study.associations:
                del self._studies[uid]
            return OVER_LIMIT
        study.instances[instance.sop_instance_uid] = instance
        study.size += growth
        return SUCCESS

    def association_ended(self, association: int) -> None:
        """``association`` closed: its studies may become due (studies left empty are forgotten)."""
        with self._lock:
            for uid, study in list(self._studies.items()):
                study.associations.discard(association)
                if not study.associations and not study.instances:
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
                and (everything or (not study.associations and now - study.last_update >= study.quiet_s))
            ]
            for study in due:
                del self._studies[study.study_instance_uid]
                self._analysing_bytes += study.size
            self._update_metrics()
            return due

    def release(self, study: PendingStudy) -> None:
        """The analysis of ``study`` is over: its memory is free again."""
        with self._lock:
            self._analysing_bytes -= study.size
            study.instances.clear()
            self._update_metrics()

    def close(self) -> None:
        """Accept nothing any more (shutdown); what is held can still be taken."""
        with self._lock:
            self._closed = True

    def _update_metrics(self) -> None:
        self._metrics.pending_bytes.set(self._pending_bytes())
        self._metrics.pending_studies.set(sum(1 for study in self._studies.values() if study.instances))
