"""Sensitivity by lesion size: the overall FP budget, each bucket counting only its lesions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fsd.eval import EvaluationInputError, deeplesion_froc, sensitivity_by_size


def two_image_case() -> tuple[list[np.ndarray], list[np.ndarray], list[list[float]]]:
    """Lesions: S (5 mm) and M (20 mm) in image 0, L (40 mm) in image 1.

    Ranked: 0.9 TP S; 0.8 FP #1 (img1); 0.7 TP M; 0.6 FP #2 (img0); 0.5 TP L.
    At 0.5 FP/image over 2 images, 1 FP is allowed: stop at FP #2 -> S and M found, L not.
    At 1 FP/image, 2 FPs allowed, fewer than 3 FPs exist -> all found.
    """
    ground_truths = [np.array([[0, 0, 4, 4], [20, 20, 36, 36]], dtype=float), np.array([[0, 0, 32, 32.0]])]
    predictions = [
        np.array([[0, 0, 4, 4, 0.9], [20, 20, 36, 36, 0.7], [50, 50, 60, 60, 0.6]]),
        np.array([[40, 40, 45, 45, 0.8], [0, 0, 32, 32, 0.5]]),
    ]
    return predictions, ground_truths, [[5.0, 20.0], [40.0]]


def test_buckets_share_the_overall_budget():
    predictions, ground_truths, sizes = two_image_case()
    result = sensitivity_by_size(predictions, ground_truths, sizes, fps=0.5)
    assert result == {"<10mm": 1.0, "10-30mm": 1.0, ">=30mm": 0.0}
    # overall at 0.5: 2 of 3
    assert deeplesion_froc(predictions, ground_truths, fps=(0.5,))[0.5] == pytest.approx(2 / 3)
    assert sensitivity_by_size(predictions, ground_truths, sizes, fps=1.0) == {
        "<10mm": 1.0,
        "10-30mm": 1.0,
        ">=30mm": 1.0,
    }


def test_bucket_edges_are_low_inclusive_high_exclusive_and_empty_buckets_are_nan():
    predictions, ground_truths, _ = two_image_case()
    # S is exactly 10 mm -> "10-30mm"; nothing below 10 -> NaN
    result = sensitivity_by_size(predictions, ground_truths, [[10.0, 29.99], [30.0]], fps=0.5)
    assert math.isnan(result["<10mm"])
    assert result["10-30mm"] == 1.0
    assert result[">=30mm"] == 0.0


def test_custom_buckets_and_labels():
    predictions, ground_truths, sizes = two_image_case()
    result = sensitivity_by_size(predictions, ground_truths, sizes, fps=0.5, buckets=((0, 30), (5, 50)))
    # (0, 30): S, M found -> 1.0; (5, 50): S, M found, L not -> 2/3
    assert result == {"<30mm": 1.0, "5-50mm": pytest.approx(2 / 3)}


def test_sizes_must_match_the_lesions():
    predictions, ground_truths, _ = two_image_case()
    with pytest.raises(EvaluationInputError, match="shape \\(2,\\)"):
        sensitivity_by_size(predictions, ground_truths, [[5.0], [40.0]])
    with pytest.raises(EvaluationInputError, match="finite"):
        sensitivity_by_size(predictions, ground_truths, [[5.0, float("nan")], [40.0]])
    with pytest.raises(EvaluationInputError, match="low < high"):
        sensitivity_by_size(predictions, ground_truths, [[5.0, 6.0], [40.0]], buckets=((10, 10),))
