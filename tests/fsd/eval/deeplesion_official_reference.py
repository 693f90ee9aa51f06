"""Brute-force reference of the official DeepLesion FROC, for checking fsd.eval against it.

Written independently of fsd.eval, the way the official evaluation script works: pool and sort
all detections by score, walk the list one detection at a time with scalar overlaps, record
cumulative hits and false positives after each detection, then read the curve with
``scipy.interpolate.interp1d`` and hold the last sensitivity beyond the largest FP rate.

Two cases the official script does not handle (it crashes) get the only sensible values: no
detection at all gives sensitivity 0, and a rate left of the first curve point (the first
detection is a false positive, so the curve starts at sensitivity 0) gives 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.interpolate import interp1d


def scalar_overlap(detection: Sequence[float], lesion: Sequence[float], overlap: str) -> float:
    """IoU or IoBB of two x1, y1, x2, y2 boxes, one pair at a time."""
    inter_w = max(0.0, min(detection[2], lesion[2]) - max(detection[0], lesion[0]))
    inter_h = max(0.0, min(detection[3], lesion[3]) - max(detection[1], lesion[1]))
    intersection = inter_w * inter_h
    detection_area = max(0.0, detection[2] - detection[0]) * max(0.0, detection[3] - detection[1])
    lesion_area = max(0.0, lesion[2] - lesion[0]) * max(0.0, lesion[3] - lesion[1])
    denominator = detection_area + lesion_area - intersection if overlap == "iou" else detection_area
    return intersection / denominator if denominator > 0 else 0.0


def official_curve(
    predictions: Sequence[np.ndarray], ground_truths: Sequence[np.ndarray], threshold: float, overlap: str
) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative (fp_per_image, sensitivity) after each detection of the score-sorted pool."""
    pooled = [
        (float(row[4]), image, [float(v) for v in row[:4]])
        for image, table in enumerate(predictions)
        for row in np.asarray(table, dtype=float).reshape(-1, 5)
    ]
    ranked = sorted(pooled, key=lambda item: -item[0])  # Python's sort is stable: ties keep input order
    lesions = [np.asarray(boxes, dtype=float).reshape(-1, 4).tolist() for boxes in ground_truths]
    hit = [[False] * len(boxes) for boxes in lesions]
    num_hits = 0
    num_misses = 0
    cumulative_hits: list[int] = []
    cumulative_misses: list[int] = []
    for _, image, box in ranked:
        overlaps = [scalar_overlap(box, lesion, overlap) for lesion in lesions[image]]
        if not overlaps or max(overlaps) < threshold:
            num_misses += 1
        else:
            for j, value in enumerate(overlaps):
                if value >= threshold and not hit[image][j]:
                    hit[image][j] = True
                    num_hits += 1
        cumulative_hits.append(num_hits)
        cumulative_misses.append(num_misses)
    num_lesions = sum(len(boxes) for boxes in lesions)
    sensitivity = np.array(cumulative_hits, dtype=float) / num_lesions
    fp_per_image = np.array(cumulative_misses, dtype=float) / len(predictions)
    return fp_per_image, sensitivity


def official_froc(
    predictions: Sequence[np.ndarray],
    ground_truths: Sequence[np.ndarray],
    fps: Sequence[float],
    threshold: float = 0.5,
    overlap: str = "iou",
) -> dict[float, float]:
    """Sensitivity at each FP rate, read from the official curve with scipy's interp1d."""
    fp_per_image, sensitivity = official_curve(predictions, ground_truths, threshold, overlap)
    result: dict[float, float] = {}
    for rate in fps:
        rate = float(rate)
        if len(sensitivity) == 0 or rate < fp_per_image[0]:
            result[rate] = 0.0
        elif rate > fp_per_image[-1]:
            result[rate] = float(sensitivity[-1])
        else:
            result[rate] = float(interp1d(fp_per_image, sensitivity)(rate))
    return result
