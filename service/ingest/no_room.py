"""The transient refusal of intake: no room *for now*, so the sender should try again later.

Intake refuses this way, and acknowledges nothing of what it refused, when the memory for
received instances is full, the SR delivery queue is full, the intake spool cannot be written,
or the service is stopping. The DICOM node answers it with C-STORE ``A700``; the HTTP layer with
503 and ``Retry-After``. Nothing that may pass later is ever a permanent failure.
"""

from __future__ import annotations


class NoRoomError(Exception):
    """No room for now; ``reason`` is a stable code (``intake_full``, ``delivery_backlog``,
    ``intake_spool_failed``, ``shutting_down``), the message a sentence without patient data."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def shutting_down() -> NoRoomError:
    return NoRoomError("shutting_down", "The server is shutting down; retry on another instance.")


def delivery_backlog(waiting: int) -> NoRoomError:
    return NoRoomError("delivery_backlog", f"{waiting} findings are waiting for delivery to the PACS; retry later.")
