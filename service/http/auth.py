"""API-key authentication: ``X-API-Key: <key>`` or ``Authorization: Bearer <key>``.

Keys are compared in constant time (``hmac.compare_digest``) so response timing does not leak
how much of a guess was right. Without a configured key (allowed on loopback only, or with the
explicit insecure flag; see :mod:`service.http.settings`) every request is let through.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from service.http.errors import ServiceError
from service.http.settings import ServiceSettings

API_KEY_HEADER = "X-API-Key"


def presented_key(request: Request) -> str | None:
    """The key the client sent, from X-API-Key or else an Authorization Bearer token."""
    key = request.headers.get(API_KEY_HEADER)
    if key:
        return key.strip()
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def key_matches(presented: str, expected: str) -> bool:
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def require_api_key(request: Request) -> None:
    """Dependency: 401 with the JSON envelope unless the request carries the configured key."""
    settings: ServiceSettings = request.app.state.settings
    if settings.api_key is None:
        return
    presented = presented_key(request)
    if presented is None or not key_matches(presented, settings.api_key.get_secret_value()):
        raise ServiceError(
            401,
            "unauthorized",
            f"A valid API key is required: send it in the {API_KEY_HEADER} header or as 'Authorization: Bearer <key>'.",
            headers={"WWW-Authenticate": "Bearer"},
        )


#: add ``_: Authenticated`` to a route (or ``dependencies=[Depends(require_api_key)]`` to a router)
Authenticated = Annotated[None, Depends(require_api_key)]
