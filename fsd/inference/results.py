"""Detections of one slice as the JSON users receive (the server's and `fsd predict`'s schema).

Per detection:

- ``box_px``: x1, y1, x2, y2 in the original image's pixel grid, pixel-edge coordinates (the
  top-left corner of pixel (row 0, column 0) is (0, 0); pixel centres sit at +0.5);
- ``box_mm``: the same box in millimetres from that corner (x along columns, y along rows);
- ``long_diameter_mm``: RECIST long-axis estimate: the longer side of the box minus
  DeepLesion's 5-pixel box padding on both ends (never below half the side);
- ``center_patient_mm``: the box centre in patient coordinates (DICOM LPS) from
  ImagePositionPatient, ImageOrientationPatient and PixelSpacing, or null without them;
- ``type`` / ``type_id`` (1..8) / ``type_scores`` (name -> probability given a lesion); a binary
  model reports ``type`` "lesion" and ``type_id`` null;
- ``score``: probability that the box is a lesion.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fsd.inference.inputs import SliceInput

DEEPLESION_BOX_PADDING_PX = 5.0


def _round(values: np.ndarray | list[float], digits: int = 2) -> list[float]:
    return [round(float(v), digits) for v in values]


def patient_position(slice_input: SliceInput, column: float, row: float) -> list[float] | None:
    """Patient coordinates (mm) of a point given in pixel-edge (column, row) coordinates."""
    if slice_input.position_mm is None or slice_input.orientation is None:
        return None
    origin = np.asarray(slice_input.position_mm, dtype=np.float64)
    orientation = np.asarray(slice_input.orientation, dtype=np.float64)
    row_direction, column_direction = orientation[:3], orientation[3:]
    row_spacing, column_spacing = slice_input.spacing_mm
    # DICOM pixel indices address pixel centres: index = edge coordinate - 0.5
    point = origin + row_direction * (column - 0.5) * column_spacing + column_direction * (row - 0.5) * row_spacing
    return _round(point)


def detections_to_result(
    detection: dict[str, torch.Tensor],
    slice_input: SliceInput,
    class_names: list[str],
    min_score: float = 0.0,
) -> dict[str, Any]:
    """The per-slice result: identifiers and the list of detections (highest score first)."""
    binary = len(class_names) == 1
    boxes = slice_input.geometry.to_original(detection["boxes"].double().numpy())
    scores = detection["scores"].double().numpy()
    labels = detection["labels"].numpy()
    # (N, K) with K known from the classes, so that a slice without any detection (N = 0) is fine
    type_scores = detection["type_scores"].double().numpy().reshape(len(scores), len(class_names))
    row_spacing, column_spacing = slice_input.spacing_mm
    found = []
    for index in np.argsort(-scores, kind="stable"):
        score = float(scores[index])
        if score < min_score:
            continue
        x1, y1, x2, y2 = boxes[index]
        width_mm, height_mm = (x2 - x1) * column_spacing, (y2 - y1) * row_spacing
        longer = max(width_mm, height_mm)
        padding_mm = 2 * DEEPLESION_BOX_PADDING_PX * (column_spacing if width_mm >= height_mm else row_spacing)
        type_id = int(labels[index])
        found.append(
            {
                "box_px": _round([x1, y1, x2, y2]),
                "box_mm": _round([x1 * column_spacing, y1 * row_spacing, x2 * column_spacing, y2 * row_spacing]),
                "long_diameter_mm": round(max(longer - padding_mm, 0.5 * longer), 2),
                "center_patient_mm": patient_position(slice_input, (x1 + x2) / 2, (y1 + y2) / 2),
                "type": "lesion" if binary else class_names[type_id - 1],
                "type_id": None if binary else type_id,
                "score": round(score, 4),
                "type_scores": {name: round(float(p), 4) for name, p in zip(class_names, type_scores[index])},
            }
        )
    return {
        "sop_instance_uid": slice_input.sop_instance_uid,
        "series_instance_uid": slice_input.series_instance_uid,
        "frame": slice_input.frame,
        "source": slice_input.source,
        "context_slices": slice_input.context_slices,
        "detections": found,
    }
