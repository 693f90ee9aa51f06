"""The FSD inference service: a FastAPI app (``create_app``) serving an exported lesion detector.

See docs/service.md for running it (``fsd serve``, Docker), its settings and its endpoints.
"""

from service.app import create_app
from service.settings import ServiceSettings, load_settings

__all__ = ["ServiceSettings", "create_app", "load_settings"]
