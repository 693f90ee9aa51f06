"""Reading a request body into memory under a size limit.

The limit is checked twice: against the Content-Length header before anything is read, and
against the bytes actually received while streaming (a client may lie about, or omit, the
length, e.g. with chunked transfer encoding). Either way the answer is 413 and reading stops.
"""

from __future__ import annotations

from fastapi import Request

from service.http.errors import ServiceError


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def too_large(limit: int) -> ServiceError:
    return ServiceError(
        413,
        "request_too_large",
        f"The request body is over the server's limit of {_mib(limit)} (setting max_request_mib); "
        "send fewer files per request or ask the operator to raise the limit.",
    )


def declared_length(request: Request) -> int | None:
    """The Content-Length header as an int; 400 when it is not a non-negative integer."""
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.strip().isdigit():
        raise ServiceError(400, "bad_request", "The Content-Length header is not a non-negative integer.")
    return int(value)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or ServiceError 413 as soon as it is known to exceed ``limit`` bytes."""
    length = declared_length(request)
    if length is not None and length > limit:
        raise too_large(limit)
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > limit:
            raise too_large(limit)
    return bytes(received)
