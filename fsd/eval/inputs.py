"""Checks and converts what the evaluators receive: per-image detections, lesion boxes, labels, sizes.

Every evaluator of :mod:`fsd.eval` takes lists with one entry per image. Entries may be numpy
arrays, torch tensors (any device, with or without grad) or nested Python lists; they come out as
float64 / int64 numpy arrays of a checked shape. Problems are reported as
:class:`EvaluationInputError`, which is both a :class:`fsd.errors.DataError` (so the CLI prints it
as a sentence) and a :class:`ValueError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from fsd.errors import DataError

#: How a detection is compared with a lesion: intersection over union, or intersection over the
#: detected box's area ("IoBB", used by some DeepLesion papers).
OverlapKind = Literal["iou", "iobb"]
OVERLAP_KINDS: tuple[str, ...] = ("iou", "iobb")


class EvaluationInputError(DataError, ValueError):
    """The detections, ground truth or options given to an evaluator are unusable."""

    code = "invalid_evaluation_input"


def to_numpy(value: Any) -> np.ndarray:
    """A numpy view or copy of an array, a torch tensor (moved to CPU, detached) or nested lists."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _as_float_table(value: Any, columns: int, what: str, image_index: int) -> np.ndarray:
    array = to_numpy(value)
    if array.size == 0:
        return np.zeros((0, columns), dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != columns:
        raise EvaluationInputError(
            f"{what} of image {image_index} must be an array of shape (N, {columns}), "
            f"got shape {tuple(array.shape)}."
        )
    try:
        table = array.astype(np.float64)
    except (TypeError, ValueError) as error:
        raise EvaluationInputError(f"{what} of image {image_index} are not numbers: {error}") from error
    if not np.isfinite(table).all():
        raise EvaluationInputError(f"{what} of image {image_index} contain NaN or infinite values.")
    return table


def as_detections(value: Any, image_index: int) -> np.ndarray:
    """One image's detections as an (N, 5) float64 array x1, y1, x2, y2, score.

    Zero-area boxes are accepted (they overlap nothing); inverted boxes (x2 < x1 or y2 < y1) are not.
    """
    table = _as_float_table(value, 5, "detections", image_index)
    if ((table[:, 2] < table[:, 0]) | (table[:, 3] < table[:, 1])).any():
        raise EvaluationInputError(
            f"detections of image {image_index} contain a box with x2 < x1 or y2 < y1; "
            "boxes must be x1, y1, x2, y2."
        )
    return table


def as_lesion_boxes(value: Any, image_index: int) -> np.ndarray:
    """One image's ground-truth lesion boxes as an (M, 4) float64 array with x2 > x1 and y2 > y1."""
    table = _as_float_table(value, 4, "lesion boxes", image_index)
    if ((table[:, 2] <= table[:, 0]) | (table[:, 3] <= table[:, 1])).any():
        raise EvaluationInputError(
            f"lesion boxes of image {image_index} contain an empty or inverted box; "
            "every lesion box needs x2 > x1 and y2 > y1."
        )
    return table


def as_image_lists(
    predictions: Sequence[Any], ground_truths: Sequence[Any]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Both per-image lists converted and checked to describe the same, non-empty set of images."""
    if len(predictions) != len(ground_truths):
        raise EvaluationInputError(
            f"predictions cover {len(predictions)} images but the ground truth covers "
            f"{len(ground_truths)}; give one entry per image to both, in the same order."
        )
    if len(ground_truths) == 0:
        raise EvaluationInputError("there are no images to evaluate.")
    detections = [as_detections(value, index) for index, value in enumerate(predictions)]
    lesions = [as_lesion_boxes(value, index) for index, value in enumerate(ground_truths)]
    return detections, lesions


def as_per_item_values(
    values: Sequence[Any], counts: Sequence[int], what: str, dtype: type[np.generic]
) -> list[np.ndarray]:
    """Per-image 1-D arrays (labels, sizes) whose lengths must equal ``counts`` image by image."""
    if len(values) != len(counts):
        raise EvaluationInputError(
            f"{what} cover {len(values)} images but there are {len(counts)}; give one entry per image."
        )
    arrays: list[np.ndarray] = []
    for index, (value, count) in enumerate(zip(values, counts, strict=True)):
        array = to_numpy(value)
        if array.size == 0:
            array = array.reshape(0)
        if array.ndim != 1 or array.shape[0] != count:
            raise EvaluationInputError(
                f"{what} of image {index} must have shape ({count},) to match its boxes, "
                f"got shape {tuple(array.shape)}."
            )
        try:
            converted = array.astype(dtype)
        except (TypeError, ValueError) as error:
            raise EvaluationInputError(f"{what} of image {index} are not numbers: {error}") from error
        if np.issubdtype(dtype, np.integer) and not np.array_equal(converted, array):
            raise EvaluationInputError(f"{what} of image {index} must be whole numbers.")
        arrays.append(converted)
    return arrays


def as_class_labels(
    values: Sequence[Any], counts: Sequence[int], what: str, num_classes: int
) -> list[np.ndarray]:
    """Per-image type labels, each checked to lie in 1..num_classes."""
    labels = as_per_item_values(values, counts, what, np.int64)
    for index, image_labels in enumerate(labels):
        if image_labels.size and (image_labels.min() < 1 or image_labels.max() > num_classes):
            raise EvaluationInputError(
                f"{what} of image {index} must lie in 1..{num_classes}, found "
                f"{sorted(set(image_labels.tolist()))}; untyped lesions (DeepLesion marks them -1) "
                "cannot enter a per-type evaluation."
            )
    return labels


def as_type_scores(values: Sequence[Any], counts: Sequence[int], num_classes: int) -> list[np.ndarray]:
    """Per-image (N, K) type probabilities given a lesion: finite, in [0, 1], one row per detection."""
    if len(values) != len(counts):
        raise EvaluationInputError(
            f"type_scores cover {len(values)} images but there are {len(counts)}; give one entry per image."
        )
    tables: list[np.ndarray] = []
    for index, (value, count) in enumerate(zip(values, counts, strict=True)):
        table = _as_float_table(value, num_classes, "type_scores", index)
        if table.shape[0] != count:
            raise EvaluationInputError(
                f"type_scores of image {index} must have one row per detection ({count}), got {table.shape[0]}."
            )
        if table.size and (table.min() < 0 or table.max() > 1 + 1e-6):
            raise EvaluationInputError(f"type_scores of image {index} must be probabilities in [0, 1].")
        tables.append(table)
    return tables


def check_overlap(overlap: str, iou: float) -> None:
    """Reject an unknown overlap kind or a threshold outside (0, 1]."""
    if overlap not in OVERLAP_KINDS:
        raise EvaluationInputError(f"overlap must be one of {OVERLAP_KINDS}, got {overlap!r}.")
    if not 0.0 < float(iou) <= 1.0:
        raise EvaluationInputError(f"the overlap threshold must be in (0, 1], got {iou}.")


def check_fp_rates(fps: Sequence[float]) -> tuple[float, ...]:
    """False-positive rates per image as floats; each must be finite and not negative."""
    rates = tuple(float(rate) for rate in fps)
    for rate in rates:
        if not np.isfinite(rate) or rate < 0:
            raise EvaluationInputError(f"false-positive rates per image must be finite and >= 0, got {rate}.")
    return rates
