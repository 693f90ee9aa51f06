"""The hand-over from analysis to delivery: a study's SR is kept for WADO-RS and queued for the
configured destination, in one call.

:class:`SROutbox` owns nothing of its own: it holds the SR store and, when a destination is
configured, the delivery queue, both built by the app factory. Intake asks it whether the queue
has room before it accepts a study (so a full queue refuses new studies instead of dropping
findings).
"""

from __future__ import annotations

from service.delivery.queue import DeliveryQueue
from service.delivery.sr_store import KeptSR, SRStore


class SROutbox:
    """Puts SRs into the store (for WADO-RS) and the delivery queue (for the PACS), if any."""

    def __init__(self, store: SRStore, queue: DeliveryQueue | None) -> None:
        self.store = store
        self.queue = queue

    def put(self, sr: KeptSR) -> bool:
        """Keep and queue ``sr`` (event loop only). False when the SR spool could not write it, so
        only memory holds it until it is delivered; True otherwise."""
        self.store.keep(sr)
        return self.queue.enqueue(sr) if self.queue is not None else True

    def has_room(self) -> bool:
        """True unless ``delivery_max_queue`` SRs already wait for the destination."""
        return self.queue is None or self.queue.has_room()

    @property
    def backlog(self) -> int:
        """SRs waiting for delivery."""
        return 0 if self.queue is None else self.queue.pending
