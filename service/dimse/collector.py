"""Studies arriving at the DICOM node, held in memory until they are due for analysis.

Instances arrive one C-STORE at a time on association threads; a study may come over one
association or several. A study is *due* once none of the associations that sent it is open
and, with a quiet time set, no instance of it came for ``quiet_s``; without one, as soon as its
last association ends.

Memory is bounded: ``max_pending_bytes`` over every held instance (encoded bytes plus decoded
pixels, until its analysis is finished), ``max_study_bytes`` and ``max_study_instances`` per
study. An instance over a bound is refused with A700, and so is the rest of its study for as
long as the associations sending it stay open: its instances already held are dropped, so a
partial study is never analysed and the sender can send the whole study again later.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from service.dicom_status import OUT_OF_RESOURCES, SUCCESS
from service.instances import DecodedInstance
from service.metrics import ServiceMetrics


def held_bytes(item: DecodedInstance) -> int:
    return len(item.instance.data) + sum(int(ct_slice.hu.nbytes) for ct_slice in item.slices)


@dataclass(eq=False)
class PendingStudy:
    study_instance_uid: str
    instances: dict[str, DecodedInstance] = field(default_factory=dict)
    associations: set[int] = field(default_factory=set)
    last_update: float = 0.0
    size: int = 0
    refused: bool = False

    def ordered(self) -> list[DecodedInstance]:
        return list(self.instances.values())


class StudyCollector:
    """Thread-safe holder of the studies the node received and has not analysed yet."""

    def __init__(
        self,
        *,
        max_pending_bytes: int,
        max_study_bytes: int,
        max_study_instances: int,
        quiet_s: float,
        metrics: ServiceMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_pending_bytes = max_pending_bytes
        self.max_study_bytes = max_study_bytes
        self.max_study_instances = max_study_instances
        self.quiet_s = quiet_s
        self._metrics = metrics
        self._clock = clock
        self._lock = threading.Lock()
        self._studies: dict[str, PendingStudy] = {}
        #: bytes held by studies handed out for analysis and not released yet
        self._analysing_bytes = 0

    @property
    def pending_bytes(self) -> int:
        return sum(study.size for study in self._studies.values()) + self._analysing_bytes

    def add(self, association: int, item: DecodedInstance) -> int:
        """Hold ``item`` sent on ``association``; SUCCESS, or OUT_OF_RESOURCES when over a bound."""
        size = held_bytes(item)
        uid = item.instance.study_instance_uid
        with self._lock:
            study = self._studies.setdefault(uid, PendingStudy(uid))
            study.associations.add(association)
            study.last_update = self._clock()
            if study.refused:
                return OUT_OF_RESOURCES
            previous = study.instances.get(item.instance.sop_instance_uid)
            growth = size - (held_bytes(previous) if previous is not None else 0)
            count = len(study.instances) + (previous is None)
            if (
                count > self.max_study_instances
                or study.size + growth > self.max_study_bytes
                or self.pending_bytes + growth > self.max_pending_bytes
            ):
                study.refused = True
                study.instances.clear()
                study.size = 0
                self._update_metrics()
                return OUT_OF_RESOURCES
            study.instances[item.instance.sop_instance_uid] = item
            study.size += growth
            self._update_metrics()
            return SUCCESS

    def association_ended(self, association: int) -> None:
        with self._lock:
            for uid, study in list(self._studies.items()):
                study.associations.discard(association)
                if not study.associations and (study.refused or not study.instances):
                    del self._studies[uid]
            self._update_metrics()

    def take_due(self, *, everything: bool = False) -> list[PendingStudy]:
        """Remove and return the studies due for analysis (``everything``: all that have instances)."""
        now = self._clock()
        with self._lock:
            due = [
                study
                for study in self._studies.values()
                if study.instances
                and not study.refused
                and (everything or (not study.associations and now - study.last_update >= self.quiet_s))
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

    def _update_metrics(self) -> None:
        self._metrics.pending_bytes.set(self.pending_bytes)
        self._metrics.pending_studies.set(sum(1 for study in self._studies.values() if study.instances))
