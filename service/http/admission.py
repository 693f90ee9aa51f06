"""The cap on detection and STOW-RS requests in progress: the one over ``max_concurrent_requests``
is answered 503 ``too_many_requests`` at once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from service.http.unavailable import Unavailable


class Admission:
    """Owns the count of requests in progress (used on the event loop only, so without a lock)."""

    def __init__(self, limit: int, unavailable: Unavailable) -> None:
        self.limit = limit
        self.unavailable = unavailable
        self.active = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Held for one request's lifetime; 503 when ``limit`` requests hold one already."""
        if self.active >= self.limit:
            raise self.unavailable.error(
                "too_many_requests",
                f"The server is already processing {self.limit} requests; retry shortly.",
                count_as="too_many_requests",
            )
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
