"""DeepLesion FROC: sensitivity at given average numbers of false positives per image.

Semantics follow the official DeepLesion evaluation (see :mod:`fsd.eval.matching` for the walk).
Sensitivity at ``f`` FPs per image over N images is the fraction of all lesions hit by the
detections ranked above the (floor(f * N) + 1)-th false positive, that is with at most f * N
false positives allowed; when there are fewer false positives, every detection counts. This is
what the official code's linear interpolation of the FROC curve (last value held to the right)
gives, including at rates where several curve points share the same FP value.

The FROC is class-agnostic. Ground truth without any lesion has no sensitivity: the functions
here raise :class:`~fsd.eval.inputs.EvaluationInputError` (a ``ValueError``) in that case.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fsd.constants import DEEPLESION_FP_RATES
from fsd.eval.inputs import EvaluationInputError, OverlapKind, as_image_lists, check_fp_rates, check_overlap
from fsd.eval.matching import RankedMatches, match_detections

#: The rates whose mean sensitivity papers quote as one number.
MEAN_FP_RATES: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)


def match_dataset(
    predictions: Sequence[Any], ground_truths: Sequence[Any], iou: float = 0.5, overlap: OverlapKind = "iou"
) -> RankedMatches:
    """Check the inputs and run the matching walk; raises when the ground truth has no lesion.

    ``predictions``: one (N, 5) array-like x1, y1, x2, y2, score per image (N may be 0);
    ``ground_truths``: one (M, 4) array-like x1, y1, x2, y2 per image (M may be 0).
    """
    check_overlap(overlap, iou)
    detections, lesions = as_image_lists(predictions, ground_truths)
    if sum(len(image_lesions) for image_lesions in lesions) == 0:
        raise EvaluationInputError(
            "the ground truth contains no lesion, so sensitivity is undefined; "
            "evaluate on a set of images with at least one lesion."
        )
    return match_detections(detections, lesions, float(iou), overlap)


def sensitivities_at(matches: RankedMatches, fps: Sequence[float]) -> dict[float, float]:
    """Sensitivity at each FP rate, read from a finished matching walk."""
    return {rate: matches.lesions_hit(rate) / matches.num_lesions for rate in check_fp_rates(fps)}


def deeplesion_froc(
    predictions: Sequence[Any],
    ground_truths: Sequence[Any],
    fps: Sequence[float] = DEEPLESION_FP_RATES,
    iou: float = 0.5,
    overlap: OverlapKind = "iou",
) -> dict[float, float]:
    """Sensitivity (in [0, 1]) at each average number of false positives per image in ``fps``.

    Keys are the rates as floats. ``overlap="iobb"`` compares intersection over the detected box's
    area with ``iou`` instead of intersection over union.
    """
    return sensitivities_at(match_dataset(predictions, ground_truths, iou, overlap), fps)


def froc_curve(
    predictions: Sequence[Any],
    ground_truths: Sequence[Any],
    iou: float = 0.5,
    overlap: OverlapKind = "iou",
) -> tuple[np.ndarray, np.ndarray]:
    """The FROC curve as the official code builds it, for plotting.

    Returns ``(fp_per_image, sensitivity)``, one point after each detection of the score-ranked
    list: false positives so far divided by the number of images, lesions hit so far divided by
    the number of lesions. ``np.interp(f, fp_per_image, sensitivity)`` reproduces
    :func:`deeplesion_froc` at ``f`` (both arrays are empty when there is no detection).
    """
    return match_dataset(predictions, ground_truths, iou, overlap).curve()


def froc_mean(result: Mapping[float, float], fps: Sequence[float] = MEAN_FP_RATES) -> float:
    """Mean of a :func:`deeplesion_froc` result over ``fps`` (by default 0.5, 1, 2 and 4 FPs/image)."""
    rates = check_fp_rates(fps)
    if not rates:
        raise EvaluationInputError("froc_mean needs at least one false-positive rate.")
    missing = [rate for rate in rates if rate not in result]
    if missing:
        raise EvaluationInputError(
            f"the FROC result has no sensitivity at {missing} FPs per image; "
            f"it was computed at {sorted(result)}."
        )
    return float(np.mean([result[rate] for rate in rates]))
