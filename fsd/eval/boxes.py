"""Overlap between detected boxes and lesion boxes: IoU and IoBB on continuous pixel coordinates.

Boxes are x1, y1, x2, y2 floats; a box's area is (x2 - x1) * (y2 - y1), with no "+1 pixel"
convention. IoBB is the intersection divided by the *detected* box's area.
"""

from __future__ import annotations

import numpy as np

from fsd.eval.inputs import OverlapKind


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """Areas of (N, 4) boxes; zero for degenerate boxes."""
    widths = np.clip(boxes[:, 2] - boxes[:, 0], 0.0, None)
    heights = np.clip(boxes[:, 3] - boxes[:, 1], 0.0, None)
    return widths * heights


def intersection_areas(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(N, M) areas of the intersections of every box of ``first`` with every box of ``second``."""
    a, b = first[:, None, :], second[None, :, :]
    widths = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    heights = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    return np.clip(widths, 0.0, None) * np.clip(heights, 0.0, None)


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    ratio = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=ratio, where=denominator > 0)
    return ratio


def iou_matrix(detections: np.ndarray, lesions: np.ndarray) -> np.ndarray:
    """(N, M) intersection over union of N detected boxes with M lesion boxes (0 where both are empty)."""
    intersections = intersection_areas(detections, lesions)
    unions = box_areas(detections)[:, None] + box_areas(lesions)[None, :] - intersections
    return _safe_ratio(intersections, unions)


def iobb_matrix(detections: np.ndarray, lesions: np.ndarray) -> np.ndarray:
    """(N, M) intersection over the detected box's area (0 for a zero-area detection)."""
    intersections = intersection_areas(detections, lesions)
    detection_areas = np.broadcast_to(box_areas(detections)[:, None], intersections.shape)
    return _safe_ratio(intersections, detection_areas)


def overlap_matrix(detections: np.ndarray, lesions: np.ndarray, overlap: OverlapKind) -> np.ndarray:
    """(N, M) overlap of the chosen kind; only the first four columns of each array are read."""
    if overlap == "iou":
        return iou_matrix(detections[:, :4], lesions[:, :4])
    if overlap == "iobb":
        return iobb_matrix(detections[:, :4], lesions[:, :4])
    raise ValueError(f"overlap must be 'iou' or 'iobb', got {overlap!r}")
