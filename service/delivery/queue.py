"""Findings back into the PACS: a bounded queue of SRs sent to the destination, retried with backoff.

Every SR the service makes is queued here when a destination is configured. One worker task on
the event loop sends the earliest due SR (in a thread: the senders block), one at a time. A
transient failure (PACS down, busy, timed out) is retried after ``initial_s``, doubling up to
``max_s``, for as long as the process runs, so a PACS that is down for a while still gets every
SR once it is back. An SR that keeps failing never blocks the others: each SR has its own next
attempt time.

A permanent refusal (the destination will never take this SR: HTTP 400/401/403/415, a
permanent FailureReason or C-STORE status, see :class:`~service.delivery.destination.DeliveryError`)
is not retried: the SR is *dead-lettered*, i.e. taken out of the queue (so refusals cannot fill
it and block intake), kept retrievable by WADO-RS in the SR store (kept again, so for
``sr_keep_s`` from then), counted in ``fsd_sr_deliveries_total{outcome="dead_lettered"}`` and
logged as an error with its hashed UID and the reason.

With a spool (``sr_spool_dir``, :mod:`service.delivery.sr_spool`) every queued SR is also on disk until it
is delivered or dead-lettered, and the spool is reloaded at start, so SRs still waiting at
shutdown are sent after the restart. Without one (the default) the queue lives in memory: SRs
still waiting when the service stops are tried once more and then logged as lost (they are
not kept anywhere).

The queue is bounded where work enters, not here: intake (STOW-RS and the DICOM node) asks
:meth:`DeliveryQueue.has_room` before accepting a study, and refuses it (503 / C-STORE A700)
when ``max_queue`` SRs are waiting, so nothing already made is ever dropped. Attempts, failures
and the backlog are in ``/metrics`` (``fsd_sr_deliveries_total``, ``fsd_sr_delivery_pending``,
``fsd_sr_delivery_oldest_pending_seconds``) and the logs (hashed UIDs only).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from fsd.io.dicom import hash_uid
from service.common.backoff import backoff_s
from service.common.metrics import ServiceMetrics
from service.delivery.destination import DeliveryError, Destination
from service.delivery.sr_spool import SRSpool
from service.delivery.sr_store import KeptSR, SRStore

logger = logging.getLogger("fsd.service")


@dataclass(eq=False)
class _Pending:
    sr: KeptSR
    queued_at: float = field(default_factory=time.monotonic)
    attempts: int = 0
    due: float = field(default_factory=time.monotonic)


class DeliveryQueue:
    """SRs waiting for ``destination``; ``start`` on the event loop, ``close`` on shutdown.

    ``sr_store`` keeps dead-lettered SRs retrievable; ``spool`` keeps waiting SRs across restarts.
    """

    def __init__(
        self,
        destination: Destination,
        *,
        max_queue: int,
        initial_s: float,
        max_s: float,
        metrics: ServiceMetrics,
        sr_store: SRStore | None = None,
        spool: SRSpool | None = None,
    ) -> None:
        self.destination = destination
        self.sr_store = sr_store
        self.spool = spool
        self.max_queue = max_queue
        self.initial_s = initial_s
        self.max_s = max(max_s, initial_s)
        self._metrics = metrics
        self._pending: list[_Pending] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.delivered = 0
        self.dead_lettered = 0

    def start(self) -> None:
        """Queue again the SRs the spool holds, then start delivering (on the running event loop)."""
        if self.spool is not None:
            reloaded = self.spool.load()
            for sr in reloaded:
                self._pending.append(_Pending(sr))
                if self.sr_store is not None:
                    self.sr_store.keep(sr)
            if reloaded:
                logger.info("%d SR(s) waiting for delivery reloaded from the spool", len(reloaded))
                self._update_metrics()
        self._task = asyncio.create_task(self._work(), name="fsd-sr-delivery")
        logger.info("SRs go to %s", self.destination.describe())

    def has_room(self) -> bool:
        """True while fewer than ``max_queue`` SRs wait: intake asks before accepting a study."""
        return len(self._pending) < self.max_queue

    @property
    def pending(self) -> int:
        """SRs waiting for delivery, including those being retried."""
        return len(self._pending)

    def enqueue(self, sr: KeptSR) -> bool:
        """Queue one SR (event loop only); never refused: intake keeps the queue bounded.

        False when the spool could not write it: it is still delivered from memory, but a restart
        before that would lose it (True without a spool: nothing more can be done)."""
        spooled = True
        if self.spool is not None:
            try:
                self.spool.save(sr)
            except OSError as error:  # still delivered from memory; only a restart would lose it
                spooled = False
                logger.error("SR %s not written to the spool: %s", hash_uid(sr.sop_instance_uid), type(error).__name__)
        self._pending.append(_Pending(sr))
        self._update_metrics()
        self._wake.set()
        return spooled

    def backoff_s(self, attempts: int) -> float:
        """Delay before attempt ``attempts + 1`` after ``attempts`` failures."""
        return backoff_s(attempts, self.initial_s, self.max_s)

    async def close(self, timeout_s: float) -> int:
        """Try the waiting SRs once more within ``timeout_s``, stop, and return how many are left."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
            except asyncio.TimeoutError:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        left = len(self._pending)
        if left and self.spool is not None:
            logger.warning(
                "%d SR(s) not delivered to %s at shutdown; they stay in the spool and are sent after the restart",
                left, self.destination.describe(),
            )
        elif left:
            logger.error(
                "%d SR(s) not delivered to %s at shutdown and lost (no sr_spool_dir); they were: %s",
                left, self.destination.describe(), ", ".join(hash_uid(item.sr.sop_instance_uid) for item in self._pending),
            )
        return left

    async def _work(self) -> None:
        while True:
            if self._closing and not any(item.attempts == 0 or item.due <= time.monotonic() for item in self._pending):
                return
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            item = min(self._pending, key=lambda pending: pending.due)
            wait = item.due - time.monotonic()
            if wait > 0 and not self._closing:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), wait)
                except asyncio.TimeoutError:
                    pass
                continue
            await self._attempt(item)

    async def _attempt(self, item: _Pending) -> None:
        label = self.destination.kind
        try:
            await asyncio.to_thread(self.destination.send, item.sr)
        except DeliveryError as error:
            if error.permanent:
                self._dead_letter(item, label, str(error))
            else:
                self._failed(item, label, str(error))
            return
        except Exception as error:  # a sender bug must not stop deliveries; the SR is retried
            self._failed(item, label, f"unexpected {type(error).__name__}")
            return
        self._pending.remove(item)
        self._unspool(item)
        self.delivered += 1
        self._metrics.deliveries.labels(label, "delivered").inc()
        self._update_metrics()
        logger.info(
            "delivered SR %s to %s after %d attempt(s)",
            hash_uid(item.sr.sop_instance_uid), self.destination.describe(), item.attempts + 1,
        )

    def _unspool(self, item: _Pending) -> None:
        if self.spool is not None:
            try:
                self.spool.remove(item.sr.sop_instance_uid)
            except OSError as error:
                logger.error("SR %s not removed from the spool: %s", hash_uid(item.sr.sop_instance_uid), type(error).__name__)

    def _dead_letter(self, item: _Pending, label: str, reason: str) -> None:
        self._pending.remove(item)
        self._unspool(item)
        self.dead_lettered += 1
        kept = self.sr_store is not None and self.sr_store.keep(item.sr)
        self._metrics.deliveries.labels(label, "dead_lettered").inc()
        self._update_metrics()
        logger.error(
            "SR %s not delivered, refused for good after %d attempt(s): %s; %s",
            hash_uid(item.sr.sop_instance_uid), item.attempts + 1, reason,
            "kept for WADO-RS retrieval" if kept else "too large to keep for WADO-RS",
        )

    def _failed(self, item: _Pending, label: str, reason: str) -> None:
        item.attempts += 1
        delay = self.backoff_s(item.attempts)
        item.due = time.monotonic() + delay
        self._metrics.deliveries.labels(label, "failed").inc()
        self._update_metrics()
        logger.warning(
            "delivery of SR %s failed (attempt %d): %s; retrying in %.1f s",
            hash_uid(item.sr.sop_instance_uid), item.attempts, reason, delay,
        )

    def _update_metrics(self) -> None:
        self._metrics.delivery_pending.set(len(self._pending))
        oldest = min((item.queued_at for item in self._pending), default=None)
        self._metrics.delivery_oldest_s.set(0 if oldest is None else time.monotonic() - oldest)
