"""The service's own SRs, kept in memory for a bounded time and size so WADO-RS can serve them.

Only documents the service made are kept (never uploaded images). An SR is dropped once it is
older than ``keep_s`` or, oldest first, when the kept bytes would exceed ``max_bytes``; a single
SR larger than ``max_bytes`` is not kept at all. The kept bytes count everything held per SR:
the Part 10 document, its data set (counted as large as the document) and its DICOM JSON
metadata (as serialised), not the document alone. Delivery to the PACS does not depend on this
store: the delivery queue holds its own reference until the SR is delivered.

:class:`KeptSR` is an SR as the service holds it everywhere, from the moment it is built
(:func:`service.delivery.sr.build_sr` encodes it once and reads the encoding back once, so the
data set, the UIDs and the DICOM JSON metadata are exactly what was encoded) to its delivery,
which sends that data set or those bytes without parsing them again. :func:`describe_sr` also
reads an SR reloaded from the spool after a restart.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from pydicom import Dataset, dcmread

from service.common.metrics import ServiceMetrics


@dataclass(frozen=True)
class KeptSR:
    """One SR: its data set, its document (Part 10 bytes) and the UIDs it is found by."""

    dataset: Dataset = field(repr=False)
    data: bytes
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    metadata: dict[str, Any] = field(repr=False)
    #: memory the SR store counts for it: the document (twice: as bytes and as a data set) plus its
    #: serialised metadata
    size_bytes: int = 0
    kept_at: float = 0.0


def describe_sr(data: bytes) -> KeptSR:
    """The SR whose Part 10 encoding is ``data``: its data set, UIDs and DICOM JSON metadata."""
    dataset = dcmread(io.BytesIO(data))
    metadata = dataset.to_json_dict()
    return KeptSR(
        dataset=dataset,
        data=data,
        study_instance_uid=str(dataset.StudyInstanceUID),
        series_instance_uid=str(dataset.SeriesInstanceUID),
        sop_instance_uid=str(dataset.SOPInstanceUID),
        sop_class_uid=str(dataset.SOPClassUID),
        transfer_syntax_uid=str(dataset.file_meta.TransferSyntaxUID),
        metadata=metadata,
        size_bytes=2 * len(data) + len(json.dumps(metadata)),
    )


class SRStore:
    """Kept SRs by SOP instance UID, oldest first; safe to use from several threads."""

    def __init__(
        self,
        max_bytes: int,
        keep_s: float,
        metrics: ServiceMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes = max_bytes
        self.keep_s = keep_s
        self._metrics = metrics
        self._clock = clock
        self._items: OrderedDict[str, KeptSR] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def keep(self, sr: KeptSR) -> bool:
        """Keep ``sr`` (evicting the oldest as needed); False when it alone is over the size bound."""
        if sr.size_bytes > self.max_bytes:
            return False
        with self._lock:
            self._evict_expired()
            old = self._items.pop(sr.sop_instance_uid, None)
            if old is not None:
                self._bytes -= old.size_bytes
            while self._items and self._bytes + sr.size_bytes > self.max_bytes:
                self._drop_oldest()
            self._items[sr.sop_instance_uid] = replace(sr, kept_at=self._clock())
            self._bytes += sr.size_bytes
            self._update_metrics()
        return True

    def find(self, study: str, series: str | None = None, sop_instance: str | None = None) -> list[KeptSR]:
        """The kept SRs of a study, optionally narrowed to a series and an instance."""
        with self._lock:
            self._evict_expired()
            return [
                item
                for item in self._items.values()
                if item.study_instance_uid == study
                and (series is None or item.series_instance_uid == series)
                and (sop_instance is None or item.sop_instance_uid == sop_instance)
            ]

    @property
    def count(self) -> int:
        """How many SRs are kept now (expired ones are dropped first)."""
        with self._lock:
            self._evict_expired()
            return len(self._items)

    @property
    def size_bytes(self) -> int:
        """Memory the kept SRs take: documents and metadata (expired ones are dropped first)."""
        with self._lock:
            self._evict_expired()
            return self._bytes

    def _drop_oldest(self) -> None:
        _, item = self._items.popitem(last=False)
        self._bytes -= item.size_bytes

    def _evict_expired(self) -> None:
        horizon = self._clock() - self.keep_s
        while self._items and next(iter(self._items.values())).kept_at < horizon:
            self._drop_oldest()
        self._update_metrics()

    def _update_metrics(self) -> None:
        if self._metrics is not None:
            self._metrics.kept_srs.set(len(self._items))
            self._metrics.kept_sr_bytes.set(self._bytes)
