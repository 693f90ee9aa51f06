"""The decode pool seen from the event loop: blocking work (DICOM decoding, input preparation, SR
building) runs there, optionally within a request's deadline, so the event loop never blocks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

from service.errors import ServiceError
from service.state import ServiceState

T = TypeVar("T")


def deadline_exceeded(state: ServiceState) -> ServiceError:
    """The 504 answer of a request that ran out of time."""
    return ServiceError(
        504,
        "deadline_exceeded",
        f"The request did not finish within {state.settings.request_timeout_s:g} s (setting request_timeout_s).",
    )


async def in_pool(state: ServiceState, function: Callable[..., T], *args: Any, deadline: float | None = None) -> T:
    """``function(*args)`` in the decode pool; with a ``deadline`` (``time.monotonic()``), 504 past it."""
    loop = asyncio.get_running_loop()
    if deadline is None:
        return await loop.run_in_executor(state.decode_pool, function, *args)
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise deadline_exceeded(state)
    try:
        return await asyncio.wait_for(loop.run_in_executor(state.decode_pool, function, *args), remaining)
    except asyncio.TimeoutError:
        raise deadline_exceeded(state) from None
