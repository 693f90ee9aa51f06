"""A PNG of a slice with its detections drawn: boxes, type labels and scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

#: colour per lesion type id (1..8); binary detections use the first
TYPE_COLOURS: tuple[tuple[int, int, int], ...] = (
    (255, 80, 80),
    (255, 170, 60),
    (240, 230, 70),
    (90, 220, 90),
    (70, 200, 255),
    (120, 120, 255),
    (220, 100, 255),
    (255, 120, 200),
)


def window_to_uint8(hu: np.ndarray, center: float = 40.0, width: float = 400.0) -> np.ndarray:
    low, high = center - width / 2, center + width / 2
    return (np.clip((hu - low) / (high - low), 0, 1) * 255).astype(np.uint8)


def render_detections(hu: np.ndarray, result: dict[str, Any], out_png: str | Path, window: tuple[float, float] = (40.0, 400.0), min_score: float = 0.3) -> Path:
    """Draw ``result['detections']`` (box_px in the slice's grid) over the windowed slice."""
    image = Image.fromarray(window_to_uint8(hu, *window)).convert("RGB")
    scale = max(1, 512 // max(image.size))
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    draw = ImageDraw.Draw(image)
    for detection in result["detections"]:
        if detection["score"] < min_score:
            continue
        colour = TYPE_COLOURS[((detection["type_id"] or 1) - 1) % len(TYPE_COLOURS)]
        x1, y1, x2, y2 = (v * scale for v in detection["box_px"])
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=2)
        draw.text((x1, max(y1 - 12, 0)), f"{detection['type']} {detection['score']:.2f}", fill=colour)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    image.save(out_png)
    return out_png
