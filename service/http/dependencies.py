"""FastAPI dependencies as ``Annotated`` aliases: each route asks for the objects it uses, by type.

The app factory builds every object once and registers it on ``app.state`` under the name a
getter below reads; a route never sees more than what it declares.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request

from service.analysis.runtime import ModelRuntime
from service.delivery.sr_store import SRStore
from service.http.detection import DetectionRequests
from service.http.readiness import Readiness
from service.http.settings import ServiceSettings
from service.http.store import StoreRequests
from service.http.unavailable import NOT_LOADED, Unavailable

T = TypeVar("T")


def _registered(name: str, kind: type[T]) -> Callable[[Request], T]:
    """A dependency returning the ``kind`` object the app factory registered as ``name``."""

    def get(request: Request) -> T:
        found = getattr(request.app.state, name)
        assert isinstance(found, kind), f"app.state.{name} is not a {kind.__name__}"
        return found

    get.__name__ = f"get_{name}"
    return get


def loaded_runtime(request: Request) -> ModelRuntime:
    """The model runtime once the model is loaded; 503 ``not_ready`` before."""
    runtime: ModelRuntime = _registered("runtime", ModelRuntime)(request)
    if not runtime.loaded:
        unavailable: Unavailable = _registered("unavailable", Unavailable)(request)
        raise unavailable.error("not_ready", NOT_LOADED)
    return runtime


Settings = Annotated[ServiceSettings, Depends(_registered("settings", ServiceSettings))]
Detections = Annotated[DetectionRequests, Depends(_registered("detections", DetectionRequests))]
Stores = Annotated[StoreRequests, Depends(_registered("stores", StoreRequests))]
KeptSRs = Annotated[SRStore, Depends(_registered("sr_store", SRStore))]
Runtime = Annotated[ModelRuntime, Depends(_registered("runtime", ModelRuntime))]
LoadedModel = Annotated[ModelRuntime, Depends(loaded_runtime)]
ReadinessState = Annotated[Readiness, Depends(_registered("readiness", Readiness))]
Unavailability = Annotated[Unavailable, Depends(_registered("unavailable", Unavailable))]
