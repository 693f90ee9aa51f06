"""The FSD inference service: a FastAPI app (``create_app``) serving an exported lesion detector.

See docs/service.md for running it (``fsd serve``, ``python -m service``, Docker), its settings
and its endpoints. ``create_app`` and the settings are imported on first use, so the command
line (:mod:`service.cli`) starts without loading the web stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.app import create_app
    from service.settings import ServiceSettings, load_settings

__all__ = ["ServiceSettings", "create_app", "load_settings"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from service.app import create_app

        return create_app
    if name in ("ServiceSettings", "load_settings"):
        from service import settings

        return getattr(settings, name)
    raise AttributeError(f"module 'service' has no attribute {name!r}")
