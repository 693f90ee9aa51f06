"""COCO-style average precision through pycocotools, built in memory from per-image arrays.

Returned values are fractions in [0, 1] (not percent):

- ``AP`` (mean over IoU 0.50:0.05:0.95), ``AP50``, ``AP75``: class-agnostic, every lesion and
  every detection is one "lesion" category (the binary lesion-detection task; labels ignored).
- with ``num_classes > 1`` also ``per_type_AP`` and ``per_type_AP50`` (class name -> AP of type
  t: every detection enters type t with the score P(lesion) x P(t | lesion) from ``type_scores``
  (unless that is 0) and is matched against the lesions of type t; NaN for a class without
  ground truth) and
  ``mAP_types`` / ``mAP50_types``, their means over the classes that have ground truth. A
  detection thus counts for every type, weighed by how likely it is that type, as DESIGN's
  contract for type scores says (ranking a detection only under its argmax type by P(lesion)
  made the number track class-agnostic AP50).

COCO's defaults apply: at most 100 detections per image (the highest scored), all areas.
Images without lesions count (their detections are false positives); no detections gives AP 0.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval, Params

from fsd.constants import LESION_TYPES
from fsd.eval.inputs import EvaluationInputError, as_class_labels, as_image_lists, as_type_scores


def boxes_to_coco_xywh(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) x1, y1, x2, y2 boxes as COCO's x, y, width, height."""
    return np.stack(
        [boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1
    ).reshape(-1, 4)


def build_coco_ground_truth(
    lesions: list[np.ndarray], lesion_categories: list[np.ndarray], category_names: dict[int, str]
) -> COCO:
    """An in-memory COCO ground truth: images 1..N, one annotation per lesion (ids from 1, since
    pycocotools reads id 0 as "unmatched"), COCO xywh boxes, ``area`` = box area, ``iscrowd`` = 0."""
    annotations = []
    for image_index, (boxes, categories) in enumerate(zip(lesions, lesion_categories, strict=True)):
        for box, category in zip(boxes_to_coco_xywh(boxes).tolist(), categories.tolist(), strict=True):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_index + 1,
                    "category_id": int(category),
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
    coco = COCO()
    coco.dataset = {
        "images": [{"id": index + 1} for index in range(len(lesions))],
        "annotations": annotations,
        "categories": [{"id": key, "name": name} for key, name in category_names.items()],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def build_coco_results(
    detections: list[np.ndarray], detection_categories: list[np.ndarray]
) -> list[dict[str, Any]]:
    """Detections as a COCO result list (image ids 1..N, xywh boxes, score, category)."""
    results = []
    for image_index, (table, categories) in enumerate(zip(detections, detection_categories, strict=True)):
        boxes = boxes_to_coco_xywh(table[:, :4]).tolist()
        for box, score, category in zip(boxes, table[:, 4].tolist(), categories.tolist(), strict=True):
            results.append(
                {"image_id": image_index + 1, "category_id": int(category), "bbox": box, "score": score}
            )
    return results


def coco_precision(
    lesions: list[np.ndarray],
    lesion_categories: list[np.ndarray],
    detections: list[np.ndarray],
    detection_categories: list[np.ndarray],
    category_names: dict[int, str],
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """COCOeval's precision table, for area "all" and 100 detections per image.

    Returns ``(precision, iou_thresholds, category_ids)`` with precision shaped
    (IoU thresholds, recall points, categories); -1 marks a category without ground truth.
    """
    ground_truth = build_coco_ground_truth(lesions, lesion_categories, category_names)
    results = build_coco_results(detections, detection_categories)
    category_ids = sorted(category_names)
    if not results:  # pycocotools cannot load an empty result list; nothing detected means AP 0
        params = Params(iouType="bbox")
        precision = np.zeros((len(params.iouThrs), len(params.recThrs), len(category_ids)))
        for k, key in enumerate(category_ids):
            if not ground_truth.getAnnIds(catIds=[key]):
                precision[:, :, k] = -1.0
        return precision, np.asarray(params.iouThrs), category_ids
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(ground_truth, ground_truth.loadRes(results), iouType="bbox")
        evaluator.params.catIds = category_ids
        evaluator.evaluate()
        evaluator.accumulate()
    all_areas = evaluator.params.areaRngLbl.index("all")
    precision = evaluator.eval["precision"][:, :, :, all_areas, -1]
    return precision, np.asarray(evaluator.params.iouThrs), category_ids


def _mean_valid(values: np.ndarray) -> float:
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else math.nan


def _threshold_index(iou_thresholds: np.ndarray, threshold: float) -> int:
    return int(np.flatnonzero(np.isclose(iou_thresholds, threshold))[0])


def default_class_names(num_classes: int) -> list[str]:
    """DeepLesion's lesion-type names for 8 classes, else "1".."K"."""
    if num_classes == len(LESION_TYPES):
        return list(LESION_TYPES)
    return [str(class_id) for class_id in range(1, num_classes + 1)]


def coco_metrics(
    predictions: Sequence[Any],
    ground_truths: Sequence[Any],
    labels: Sequence[Any] | None = None,
    type_scores: Sequence[Any] | None = None,
    num_classes: int = 1,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """COCO AP (fractions in [0, 1]) of per-image detections against per-image lesion boxes.

    ``predictions``: one (N, 5) x1, y1, x2, y2, score per image, the score P(lesion);
    ``ground_truths``: one (M, 4) per image; ``labels``: one (M,) array of types 1..num_classes
    per image and ``type_scores``: one (N, num_classes) array of P(type | lesion) per image, both
    needed when ``num_classes > 1``. See the module docstring for the returned keys.
    """
    detections, lesions = as_image_lists(predictions, ground_truths)
    if sum(len(boxes) for boxes in lesions) == 0:
        raise EvaluationInputError("the ground truth contains no lesion, so average precision is undefined.")
    if num_classes < 1:
        raise EvaluationInputError(f"num_classes must be at least 1, got {num_classes}.")

    one_category = [np.ones(len(boxes), dtype=np.int64) for boxes in lesions]
    one_detection_category = [np.ones(len(table), dtype=np.int64) for table in detections]
    precision, thresholds, _ = coco_precision(
        lesions, one_category, detections, one_detection_category, {1: "lesion"}
    )
    metrics: dict[str, Any] = {
        "AP": _mean_valid(precision),
        "AP50": _mean_valid(precision[_threshold_index(thresholds, 0.5)]),
        "AP75": _mean_valid(precision[_threshold_index(thresholds, 0.75)]),
    }
    if num_classes == 1:
        return metrics

    names = list(class_names) if class_names is not None else default_class_names(num_classes)
    if len(names) != num_classes or len(set(names)) != num_classes:
        raise EvaluationInputError(
            f"class_names must hold {num_classes} distinct names (one per class), got {names}."
        )
    if labels is None or type_scores is None:
        raise EvaluationInputError("per-type AP needs both labels (ground truth) and type_scores (detections).")
    lesion_types = as_class_labels(labels, [len(boxes) for boxes in lesions], "labels", num_classes)
    probabilities = as_type_scores(type_scores, [len(table) for table in detections], num_classes)
    typed_detections: list[np.ndarray] = []
    typed_categories: list[np.ndarray] = []
    for table, image_probabilities in zip(detections, probabilities, strict=True):
        # every detection once per type, scored P(lesion) x P(type | lesion), type by type; a
        # detection with no probability of a type is no candidate for it
        tables, categories = [], []
        for k in range(num_classes):
            typed = np.concatenate([table[:, :4], table[:, 4:5] * image_probabilities[:, k : k + 1]], axis=1)
            typed = typed[typed[:, 4] > 0]
            tables.append(typed)
            categories.append(np.full(len(typed), k + 1, dtype=np.int64))
        typed_detections.append(np.concatenate(tables).reshape(-1, 5))
        typed_categories.append(np.concatenate(categories))
    category_names = {class_id: names[class_id - 1] for class_id in range(1, num_classes + 1)}
    precision, thresholds, category_ids = coco_precision(
        lesions, lesion_types, typed_detections, typed_categories, category_names
    )
    at_50 = _threshold_index(thresholds, 0.5)
    names_in_order = [category_names[key] for key in category_ids]
    per_type = {name: _mean_valid(precision[:, :, k]) for k, name in enumerate(names_in_order)}
    per_type_50 = {name: _mean_valid(precision[at_50, :, k]) for k, name in enumerate(names_in_order)}
    present = [value for value in per_type.values() if not math.isnan(value)]
    present_50 = [value for value in per_type_50.values() if not math.isnan(value)]
    metrics["per_type_AP"] = per_type
    metrics["per_type_AP50"] = per_type_50
    metrics["mAP_types"] = float(np.mean(present))
    metrics["mAP50_types"] = float(np.mean(present_50))
    return metrics
