"""Sensitivity by lesion size: the DeepLesion FROC read at one FP rate, one number per size bucket.

The false-positive budget and the ranking are those of the overall FROC (all images, all
detections); a bucket's sensitivity is the fraction of *its* lesions hit within that budget.
A lesion of long diameter d (mm) belongs to bucket (low, high) when low <= d < high.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from fsd.eval.froc import match_dataset
from fsd.eval.inputs import EvaluationInputError, OverlapKind, as_per_item_values, check_fp_rates
from fsd.eval.matching import RankedMatches

#: Small (< 10 mm), medium (10-30 mm) and large (>= 30 mm) lesions.
DEFAULT_SIZE_BUCKETS_MM: tuple[tuple[float, float], ...] = ((0.0, 10.0), (10.0, 30.0), (30.0, math.inf))


def size_bucket_label(low: float, high: float) -> str:
    """A readable name: ``"<10mm"``, ``"10-30mm"``, ``">=30mm"``."""
    if math.isinf(high):
        return f">={low:g}mm"
    if low == 0:
        return f"<{high:g}mm"
    return f"{low:g}-{high:g}mm"


def _check_buckets(buckets: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    checked = [(float(low), float(high)) for low, high in buckets]
    for low, high in checked:
        if math.isnan(low) or math.isnan(high) or not low < high:
            raise EvaluationInputError(f"a size bucket needs low < high, got ({low}, {high}).")
    labels = [size_bucket_label(low, high) for low, high in checked]
    if len(set(labels)) != len(labels):
        raise EvaluationInputError(f"size buckets must be distinct, got {checked}.")
    return checked


def sensitivity_by_size_from_matches(
    matches: RankedMatches,
    lesion_sizes_mm: np.ndarray,
    fp_per_image: float,
    buckets: Sequence[tuple[float, float]] = DEFAULT_SIZE_BUCKETS_MM,
) -> dict[str, float]:
    """Per-bucket sensitivity from a finished matching walk; NaN for a bucket without lesions.

    ``lesion_sizes_mm`` holds one diameter per lesion, in the walk's lesion order.
    """
    (rate,) = check_fp_rates([fp_per_image])
    result: dict[str, float] = {}
    for low, high in _check_buckets(buckets):
        in_bucket = (lesion_sizes_mm >= low) & (lesion_sizes_mm < high)
        count = int(np.count_nonzero(in_bucket))
        hit = matches.lesions_hit(rate, in_bucket)
        result[size_bucket_label(low, high)] = hit / count if count else math.nan
    return result


def flatten_lesion_sizes(sizes_mm: Sequence[Any], lesion_counts: Sequence[int]) -> np.ndarray:
    """Per-image diameter arrays checked against the lesion counts and joined in lesion order."""
    per_image = as_per_item_values(sizes_mm, lesion_counts, "lesion sizes", np.float64)
    flat = np.concatenate(per_image) if per_image else np.zeros(0)
    if not np.isfinite(flat).all() or (flat < 0).any():
        raise EvaluationInputError("lesion sizes must be finite diameters in mm, >= 0.")
    return flat


def sensitivity_by_size(
    predictions: Sequence[Any],
    ground_truths: Sequence[Any],
    sizes_mm: Sequence[Any],
    fps: float = 4.0,
    buckets: Sequence[tuple[float, float]] = DEFAULT_SIZE_BUCKETS_MM,
    iou: float = 0.5,
    overlap: OverlapKind = "iou",
) -> dict[str, float]:
    """Sensitivity of each size bucket at ``fps`` average false positives per image.

    ``sizes_mm``: one (M,) array of lesion long diameters in mm per image, matching the ground
    truth boxes. Returns bucket label -> sensitivity in [0, 1] (NaN for a bucket with no lesion).
    """
    matches = match_dataset(predictions, ground_truths, iou, overlap)
    counts = [len(boxes) for boxes in ground_truths]
    return sensitivity_by_size_from_matches(matches, flatten_lesion_sizes(sizes_mm, counts), fps, buckets)
