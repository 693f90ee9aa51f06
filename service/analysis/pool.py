"""The decode pool seen from the event loop: blocking work (DICOM parsing and decoding, input
preparation, SR building) runs on its threads, optionally within a request's deadline, so the
event loop never blocks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from service.analysis.batcher import DeadlineExceededError

T = TypeVar("T")


class DecodePool:
    """Owns the decode threads (``workers`` of them); :meth:`run` awaits one call on them."""

    def __init__(self, workers: int) -> None:
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="fsd-decode")

    async def run(self, function: Callable[..., T], *args: Any, deadline: float | None = None) -> T:
        """``function(*args)`` on a decode thread; with a ``deadline`` (``time.monotonic()``),
        DeadlineExceededError past it."""
        loop = asyncio.get_running_loop()
        if deadline is None:
            return await loop.run_in_executor(self._executor, function, *args)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceededError("the request's deadline passed before this step")
        try:
            return await asyncio.wait_for(loop.run_in_executor(self._executor, function, *args), remaining)
        except asyncio.TimeoutError:
            raise DeadlineExceededError(f"no result within {remaining:.1f} s") from None

    def shutdown(self) -> None:
        """Finish the running calls, drop the queued ones, stop the threads."""
        self._executor.shutdown(wait=True, cancel_futures=True)
