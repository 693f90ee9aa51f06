"""The FSD inference service: a FastAPI app (``create_app``) and DICOM node serving an exported
lesion detector.

One folder per stage of the data's flow, dependencies pointing one way down:

    http/       requests in, answers out; the app factory builds every object once
    ingest/     STOW-RS and C-STORE intake, the intake spool, studies handed to analysis when due
    analysis/   the model, the batcher, per-slice and per-study detection
    delivery/   the SR, kept for WADO-RS and sent to the PACS (queue, spool, STOW-RS, C-STORE)
    common/     metrics, DICOM statuses, backoff, multipart (no stage)

See docs/architecture.md for the flow, docs/service.md for running it (``fsd serve``,
``python -m service``, Docker), its settings and its endpoints. ``create_app`` and the settings
are imported on first use, so the command line (:mod:`service.cli`) starts without loading the
web stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.http.app import create_app
    from service.http.settings import ServiceSettings, load_settings

__all__ = ["ServiceSettings", "create_app", "load_settings"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from service.http.app import create_app

        return create_app
    if name in ("ServiceSettings", "load_settings"):
        from service.http import settings

        return getattr(settings, name)
    raise AttributeError(f"module 'service' has no attribute {name!r}")
