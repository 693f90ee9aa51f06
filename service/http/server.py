"""How uvicorn serves the app: the one server configuration ``fsd serve`` (and the tests' live
server) use.

uvicorn's access log is off: it writes every request line with its raw path, and the DICOMweb
paths carry Study, Series and SOP Instance UIDs, which the service otherwise logs only as
``hash_uid`` digests. Requests are counted by route template in ``/metrics`` instead.
"""

from __future__ import annotations

from typing import Any

import uvicorn
from fastapi import FastAPI

from service.http.settings import ServiceSettings


def uvicorn_config(app: FastAPI, settings: ServiceSettings, **overrides: Any) -> uvicorn.Config:
    """The uvicorn configuration serving ``app`` with ``settings`` (``overrides``: e.g. TLS files in tests)."""
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "timeout_graceful_shutdown": int(settings.shutdown_timeout_s),
        "server_header": False,
        "access_log": False,
    }
    return uvicorn.Config(app, **{**options, **overrides})
