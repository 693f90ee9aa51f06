"""FastAPI dependencies as ``Annotated`` aliases: the app's state and its settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.errors import ServiceError
from service.settings import ServiceSettings
from service.state import ServiceState


def get_state(request: Request) -> ServiceState:
    state = getattr(request.app.state, "service", None)
    if state is None:
        raise ServiceError(503, "not_ready", "The model is not loaded yet.", headers={"Retry-After": "2"})
    return state


def get_settings(request: Request) -> ServiceSettings:
    return request.app.state.settings


State = Annotated[ServiceState, Depends(get_state)]
Settings = Annotated[ServiceSettings, Depends(get_settings)]
