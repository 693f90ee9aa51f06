"""All evaluation numbers of a detector in one JSON-serialisable dict (what ``report.json`` holds).

Keys (always present, in this order; fractions in [0, 1]; ``None`` where a value is undefined):

- ``num_images``, ``num_lesions``, ``num_detections``: counts over the evaluated images.
- ``iou``: the overlap threshold of the DeepLesion numbers; ``overlap``: ``"iou"`` or ``"iobb"``.
- ``froc``: sensitivity at each requested FP rate, keyed ``"0.5"``, ``"1"``, ``"2"``, ... .
- ``froc_mean_0.5_4``: mean sensitivity at 0.5, 1, 2 and 4 FPs per image.
- ``AP``, ``AP50``, ``AP75``: class-agnostic COCO AP (IoU 0.50:0.95, 0.50, 0.75).
- ``per_type_AP``, ``per_type_AP50``: class name -> COCO AP of that type, every detection scored
  P(lesion) x P(type | lesion) (``None`` for a class without ground truth); empty when
  ``num_classes == 1``.
- ``mAP_types``, ``mAP50_types``: their means over classes with ground truth; ``None`` when
  ``num_classes == 1``.
- ``type_accuracy``: of the lesions some detection finds (IoU >= ``iou``), the share whose best
  such detection names the right type; ``type_recall``: class name -> that share among the found
  lesions of the class (``None`` where none is found); ``confusion_matrix``: (K, K) counts, rows
  true type, columns the best detection's type. ``None`` / empty when ``num_classes == 1``.
- ``sensitivity_by_size``: size bucket (``"<10mm"``, ``"10-30mm"``, ``">=30mm"``) -> sensitivity
  at ``sensitivity_by_size_fp_per_image`` FPs per image (``None`` for an empty bucket); empty when
  no sizes are given.
- ``sensitivity_by_size_fp_per_image``: that rate (4).

The FROC and size numbers are class-agnostic and use ``iou`` / ``overlap``; COCO AP always uses
IoU at COCO's thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from fsd.constants import DEEPLESION_FP_RATES
from fsd.eval.coco import coco_metrics, default_class_names
from fsd.eval.froc import MEAN_FP_RATES, froc_mean, match_dataset, sensitivities_at
from fsd.eval.inputs import OverlapKind, as_class_labels, as_image_lists, as_type_scores, check_fp_rates
from fsd.eval.outcomes import Outcomes
from fsd.eval.sizes import DEFAULT_SIZE_BUCKETS_MM, flatten_lesion_sizes, sensitivity_by_size_from_matches

#: The FP rate at which sensitivity by lesion size is reported.
SIZE_FP_RATE: float = 4.0


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def fp_rate_key(rate: float) -> str:
    """The report's key for an FP rate: ``0.5 -> "0.5"``, ``4.0 -> "4"``."""
    return f"{rate:g}"


def evaluate_detections(
    predictions: Sequence[Any],
    ground_truths: Sequence[Any],
    *,
    labels: Sequence[Any] | None = None,
    type_scores: Sequence[Any] | None = None,
    sizes_mm: Sequence[Any] | None = None,
    num_classes: int = 1,
    class_names: Sequence[str] | None = None,
    fps: Sequence[float] = DEEPLESION_FP_RATES,
    iou: float = 0.5,
    overlap: OverlapKind = "iou",
) -> dict[str, Any]:
    """DeepLesion FROC, COCO AP (and per type) and sensitivity by size, as described above.

    ``predictions``: one (N, 5) x1, y1, x2, y2, score per image; ``ground_truths``: one (M, 4) per
    image; ``labels``: per-image lesion types 1..num_classes and ``type_scores``: per-image (N, K)
    P(type | lesion) of the detections (both needed when ``num_classes > 1``); ``sizes_mm``:
    per-image (M,) lesion long diameters in mm.
    """
    rates = check_fp_rates(fps)
    matches = match_dataset(predictions, ground_truths, iou, overlap)
    sensitivity = sensitivities_at(matches, tuple(dict.fromkeys(rates + MEAN_FP_RATES)))
    coco = coco_metrics(predictions, ground_truths, labels, type_scores, num_classes, class_names)
    typing = _typing(predictions, ground_truths, labels, type_scores, num_classes, class_names, iou) if num_classes > 1 else None
    by_size: dict[str, float | None] = {}
    if sizes_mm is not None:
        sizes = flatten_lesion_sizes(sizes_mm, [len(boxes) for boxes in ground_truths])
        by_size = {
            label: _json_number(value)
            for label, value in sensitivity_by_size_from_matches(
                matches, sizes, SIZE_FP_RATE, DEFAULT_SIZE_BUCKETS_MM
            ).items()
        }
    per_type = coco.get("per_type_AP", {})
    per_type_50 = coco.get("per_type_AP50", {})
    return {
        "num_images": matches.num_images,
        "num_lesions": matches.num_lesions,
        "num_detections": matches.num_detections,
        "iou": float(iou),
        "overlap": overlap,
        "froc": {fp_rate_key(rate): float(sensitivity[rate]) for rate in rates},
        "froc_mean_0.5_4": froc_mean(sensitivity, MEAN_FP_RATES),
        "AP": _json_number(coco["AP"]),
        "AP50": _json_number(coco["AP50"]),
        "AP75": _json_number(coco["AP75"]),
        "per_type_AP": {name: _json_number(value) for name, value in per_type.items()},
        "per_type_AP50": {name: _json_number(value) for name, value in per_type_50.items()},
        "mAP_types": _json_number(coco["mAP_types"]) if "mAP_types" in coco else None,
        "mAP50_types": _json_number(coco["mAP50_types"]) if "mAP50_types" in coco else None,
        "type_accuracy": _json_number(typing["type_accuracy"]) if typing else None,
        "type_recall": {name: _json_number(value) for name, value in typing["type_recall"].items()} if typing else {},
        "confusion_matrix": typing["confusion_matrix"] if typing else None,
        "sensitivity_by_size": by_size,
        "sensitivity_by_size_fp_per_image": SIZE_FP_RATE,
    }


def _typing(
    predictions: Sequence[Any],
    ground_truths: Sequence[Any],
    labels: Sequence[Any] | None,
    type_scores: Sequence[Any] | None,
    num_classes: int,
    class_names: Sequence[str] | None,
    iou: float,
) -> dict[str, Any]:
    """Type accuracy, recall by type and the confusion matrix, from each found lesion's best
    detection (:class:`fsd.eval.outcomes.Outcomes`, which the benchmark resamples too)."""
    detections, lesions = as_image_lists(predictions, ground_truths)
    assert labels is not None and type_scores is not None  # coco_metrics has checked both
    lesion_types = as_class_labels(labels, [len(boxes) for boxes in lesions], "labels", num_classes)
    probabilities = as_type_scores(type_scores, [len(table) for table in detections], num_classes)
    outcomes = Outcomes.from_predictions(
        [table[:, :4] for table in detections],
        [table[:, 4] for table in detections],
        probabilities,
        lesions,
        lesion_types,
        list(range(len(lesions))),
        num_classes,
        iou,
    )
    metrics = outcomes.type_metrics()
    return {
        "type_accuracy": metrics["type_accuracy"],
        "type_recall": dict(zip(class_names or default_class_names(num_classes), metrics["type_recall"].values())),
        "confusion_matrix": outcomes.confusion_matrix().tolist(),
    }
