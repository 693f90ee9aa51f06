"""Windowed 8-bit PNG previews of uploaded slices (``?preview=true``), for the web viewer.

The preview has the original DICOM pixel grid (Columns x Rows), so a result's ``box_px`` can be
drawn on it without any conversion.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from fsd.inference.overlay import window_to_uint8

#: soft-tissue window (center, width) in HU, used when the image stores none
DEFAULT_WINDOW = (40.0, 400.0)


def preview_png(hu: np.ndarray, window: tuple[float, float] | None = None) -> bytes:
    """The slice windowed to 8 bits (the file's own window if valid, else soft tissue), as PNG."""
    center, width = window if window is not None and window[1] > 0 else DEFAULT_WINDOW
    buffer = io.BytesIO()
    Image.fromarray(window_to_uint8(hu, center, width)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def preview_data_url(hu: np.ndarray, window: tuple[float, float] | None = None) -> str:
    """``data:image/png;base64,...`` of :func:`preview_png`, ready for an <img> or a canvas."""
    return "data:image/png;base64," + base64.b64encode(preview_png(hu, window)).decode("ascii")
