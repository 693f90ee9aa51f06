"""Per-detection outcomes of a model on a test set, so that every metric can be recomputed on a
resampled set of images (the bootstrap of ``fsd bench accuracy``) without running the model again.

Every outcome here is decided image by image:

- DeepLesion's walk (:mod:`fsd.eval.matching`): whether a detection is a false positive, and how
  many lesions it is the first to hit, depend only on its image's detections ranked above it;
- COCO's matching at IoU 0.5 (what pycocotools does for AP50): each image's detections, best
  first, take the unmatched lesion they overlap most, class-agnostically and, for each type t,
  among the lesions of type t with every detection ranked by P(lesion) x P(t | lesion) (so every
  detection with some probability of a type counts for it, as in :mod:`fsd.eval.coco`);
- the type of each lesion's best-scoring detection with IoU >= 0.5 (its most likely type), for
  type accuracy, each type's recall and the confusion matrix.

So an image drawn ``w`` times is ``w`` copies of its outcomes, and :meth:`Outcomes.metrics`
with per-image weights is exactly the metric of the resampled set (ties in score aside).
Sensitivities follow the official FROC semantics, AP50 pycocotools' 101-point interpolation
(``tests/fsd/eval/test_outcomes.py`` checks both against the full evaluation).

Result files written before the type metric scored every detection for every type hold only each
detection's most likely type; :meth:`Outcomes.load` reads them as detections that are certain
of that type (``argmax_types`` set), which gives exactly the old metric (each detection counts
for its argmax type only), and reports label it as the old one.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from fsd.constants import DEEPLESION_FP_RATES, LESION_TYPES
from fsd.eval.boxes import iou_matrix
from fsd.eval.matching import allowed_false_positives

#: COCO's recall thresholds and per-image detection cap
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
MAX_DETECTIONS = 100


def within_cap(scores: np.ndarray) -> np.ndarray:
    """For one image: which detections (in input order) are among its best ``MAX_DETECTIONS``,
    the only ones COCO evaluates."""
    counted = np.zeros(len(scores), dtype=bool)
    counted[np.argsort(-scores, kind="mergesort")[:MAX_DETECTIONS]] = True
    return counted


def coco_matches(scores: np.ndarray, ious: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """For one image: which detections (in input order) COCO's greedy matching counts as true
    positives. ``ious`` is (detections, lesions)."""
    matched = np.zeros(len(scores), dtype=bool)
    taken = np.zeros(ious.shape[1], dtype=bool)
    for index in np.argsort(-scores, kind="mergesort")[:MAX_DETECTIONS]:
        best, best_iou = -1, min(threshold, 1 - 1e-10)
        for lesion in range(ious.shape[1]):
            if taken[lesion] or ious[index, lesion] < best_iou:
                continue
            best, best_iou = lesion, ious[index, lesion]
        if best >= 0:
            taken[best] = True
            matched[index] = True
    return matched


def average_precision(true_positive: np.ndarray, weights: np.ndarray, num_lesions: float) -> float:
    """pycocotools' 101-point interpolated AP of weighted detections given in ranking order; NaN
    without lesions."""
    if num_lesions <= 0:
        return float("nan")
    tp = np.cumsum(np.where(true_positive, weights, 0.0))
    fp = np.cumsum(np.where(true_positive, 0.0, weights))
    if tp.size == 0:
        return 0.0
    recall = tp / num_lesions
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    positions = np.searchsorted(recall, RECALL_THRESHOLDS, side="left")
    interpolated = np.where(positions < len(envelope), envelope[np.minimum(positions, len(envelope) - 1)], 0.0)
    return float(interpolated.mean())


@dataclass
class Outcomes:
    """Outcomes of every detection (first axis D) and every image (first axis N) of a test set."""

    image: np.ndarray  # (D,) image index of each detection
    score: np.ndarray  # (D,) P(lesion)
    label: np.ndarray  # (D,) most likely type 1..K
    lesion_hits: np.ndarray  # (D,) lesions this detection hits first in DeepLesion's walk
    false_positive: np.ndarray  # (D,)
    coco_true_positive: np.ndarray  # (D,) class-agnostic COCO match at IoU 0.5
    coco_counted: np.ndarray  # (D,) among its image's best 100 (what COCO evaluates)
    typed_score: np.ndarray  # (D, K) P(lesion) x P(t | lesion): how the detection ranks for type t
    typed_true_positive: np.ndarray  # (D, K) COCO match at IoU 0.5 among lesions of type t
    typed_counted: np.ndarray  # (D, K) among its image's best 100 for type t
    lesions: np.ndarray  # (N,) lesions per image
    lesions_by_type: np.ndarray  # (N, K) lesions of each type per image
    lesion_image: np.ndarray  # (L,) image of each lesion
    lesion_type: np.ndarray  # (L,) its type 1..K
    lesion_predicted_type: np.ndarray  # (L,) the type of its best detection with IoU >= 0.5, 0 if none
    patient: np.ndarray  # (N,) patient of each image
    num_classes: int
    #: read from an old result file: only each detection's most likely type is known
    argmax_types: bool = False

    @classmethod
    def from_predictions(
        cls,
        boxes: list[np.ndarray],
        scores: list[np.ndarray],
        type_scores: list[np.ndarray],
        gt_boxes: list[np.ndarray],
        gt_labels: list[np.ndarray],
        patients: list[int],
        num_classes: int,
        iou: float = 0.5,
    ) -> Outcomes:
        """``type_scores``: per image (n, K) P(t | lesion) of each detection (its most likely
        type is its label)."""
        columns: dict[str, list[np.ndarray]] = {
            name: []
            for name in ("image", "score", "label", "hits", "fp", "coco", "coco_counted", "typed_score", "typed", "typed_counted")
        }
        lesion_columns: dict[str, list[np.ndarray]] = {"image": [], "type": [], "predicted": []}
        by_type = np.zeros((len(boxes), num_classes), dtype=np.int32)
        for index, (b, s, ts, gb, gl) in enumerate(zip(boxes, scores, type_scores, gt_boxes, gt_labels, strict=True)):
            b, gb = np.asarray(b, np.float64).reshape(-1, 4), np.asarray(gb, np.float64).reshape(-1, 4)
            s, gl = np.asarray(s, np.float64).reshape(-1), np.asarray(gl).reshape(-1)
            ts = np.asarray(ts, np.float64).reshape(len(s), num_classes)
            lab = ts.argmax(axis=1) + 1 if len(s) else np.zeros(0, dtype=np.int64)
            ious = iou_matrix(b, gb) if len(b) and len(gb) else np.zeros((len(b), len(gb)))
            order = np.argsort(-s, kind="stable")
            qualifies = ious >= iou
            first = np.full(len(gb), -1)
            for rank in order:  # each lesion's first qualifying detection, best first
                newly = qualifies[rank] & (first < 0)
                first[newly] = rank
            hits = np.bincount(first[first >= 0], minlength=len(b)) if len(b) else np.zeros(0, np.int64)
            ranked = s[:, None] * ts
            typed = np.zeros((len(b), num_classes), dtype=bool)
            typed_counted = np.zeros((len(b), num_classes), dtype=bool)
            for k in range(num_classes):
                candidates = np.flatnonzero(ranked[:, k] > 0)  # no probability of a type: no candidate for it
                theirs = gl == k + 1
                typed_counted[candidates, k] = within_cap(ranked[candidates, k])
                if len(candidates) and theirs.any():
                    typed[candidates, k] = coco_matches(ranked[candidates, k], ious[np.ix_(candidates, theirs)], iou)
            columns["image"].append(np.full(len(b), index, dtype=np.int32))
            columns["score"].append(s.astype(np.float32))
            columns["label"].append(lab.astype(np.int16))
            columns["hits"].append(hits.astype(np.int16))
            columns["fp"].append(~qualifies.any(axis=1) if len(gb) else np.ones(len(b), dtype=bool))
            columns["coco"].append(coco_matches(s, ious, iou) if len(gb) else np.zeros(len(b), dtype=bool))
            columns["coco_counted"].append(within_cap(s))
            columns["typed_score"].append(ranked.astype(np.float32))
            columns["typed"].append(typed)
            columns["typed_counted"].append(typed_counted)
            for k in gl:
                by_type[index, int(k) - 1] += 1 if 1 <= int(k) <= num_classes else 0
            best_detection = np.where(qualifies, s[:, None], -np.inf).argmax(axis=0) if len(b) else np.zeros(len(gb), int)
            found = qualifies.any(axis=0) if len(b) else np.zeros(len(gb), dtype=bool)
            lesion_columns["image"].append(np.full(len(gb), index, dtype=np.int32))
            lesion_columns["type"].append(gl.astype(np.int16))
            lesion_columns["predicted"].append(np.where(found, lab[best_detection] if len(b) else 0, 0).astype(np.int16))
        return cls(
            image=np.concatenate(columns["image"]),
            score=np.concatenate(columns["score"]),
            label=np.concatenate(columns["label"]),
            lesion_hits=np.concatenate(columns["hits"]),
            false_positive=np.concatenate(columns["fp"]),
            coco_true_positive=np.concatenate(columns["coco"]),
            coco_counted=np.concatenate(columns["coco_counted"]),
            typed_score=np.concatenate(columns["typed_score"]).reshape(-1, num_classes),
            typed_true_positive=np.concatenate(columns["typed"]).reshape(-1, num_classes),
            typed_counted=np.concatenate(columns["typed_counted"]).reshape(-1, num_classes),
            lesions=np.array([len(np.asarray(g).reshape(-1, 4)) for g in gt_boxes], dtype=np.int32),
            lesions_by_type=by_type,
            lesion_image=np.concatenate(lesion_columns["image"]),
            lesion_type=np.concatenate(lesion_columns["type"]),
            lesion_predicted_type=np.concatenate(lesion_columns["predicted"]),
            patient=np.asarray(patients, dtype=np.int64),
            num_classes=num_classes,
        )

    @property
    def num_images(self) -> int:
        return int(self.lesions.shape[0])

    @cached_property
    def _froc_order(self) -> np.ndarray:
        """Detections in DeepLesion's pooled ranking (score descending, ties in input order)."""
        return np.argsort(-self.score, kind="stable")

    @cached_property
    def _coco_order(self) -> np.ndarray:
        """The detections COCO evaluates, in its ranking."""
        counted = np.flatnonzero(self.coco_counted)
        return counted[np.argsort(-self.score[counted], kind="mergesort")]

    @cached_property
    def _typed_orders(self) -> list[np.ndarray]:
        """Per type, the detections COCO evaluates for it, ranked by P(lesion) x P(t | lesion)."""
        orders = []
        for k in range(self.num_classes):
            mine = np.flatnonzero(self.typed_counted[:, k])
            orders.append(mine[np.argsort(-self.typed_score[mine, k], kind="mergesort")])
        return orders

    def sensitivity_curve(self, fps: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Sensitivity at each FP rate (official semantics) of the images drawn ``weights`` times."""
        w = np.ones(self.num_images) if weights is None else np.asarray(weights, dtype=np.float64)
        per_detection = w[self.image]
        order = self._froc_order
        cumulative_fp = np.cumsum(np.where(self.false_positive[order], per_detection[order], 0.0))
        cumulative_hits = np.cumsum(self.lesion_hits[order] * per_detection[order])
        images = float(w.sum())
        lesions = float((w * self.lesions).sum())
        result = []
        for rate in fps:
            allowed = allowed_false_positives(float(rate), int(round(images))) if images >= 1 else 0
            cut = int(np.searchsorted(cumulative_fp, allowed, side="right"))  # detections before the (allowed + 1)-th FP
            hits = cumulative_hits[cut - 1] if cut > 0 else 0.0
            result.append(hits / lesions if lesions > 0 else float("nan"))
        return np.asarray(result)

    def max_fp_per_image(self, weights: np.ndarray | None = None) -> float:
        w = np.ones(self.num_images) if weights is None else np.asarray(weights, dtype=np.float64)
        return float((w[self.image] * self.false_positive).sum() / max(w.sum(), 1.0))

    def metrics(self, weights: np.ndarray | None = None, fps: tuple[float, ...] = DEEPLESION_FP_RATES) -> dict[str, Any]:
        """Sensitivities, their mean over 0.5-4, AP50 and, for several types, the type metrics of
        :func:`type_metrics`, of the images drawn ``weights`` times (all once by default)."""
        w = np.ones(self.num_images) if weights is None else np.asarray(weights, dtype=np.float64)
        rates = tuple(dict.fromkeys(tuple(fps) + (0.5, 1.0, 2.0, 4.0)))
        curve = dict(zip(rates, self.sensitivity_curve(np.asarray(rates), w)))
        per_detection = w[self.image]
        result: dict[str, Any] = {
            "froc": {f"{rate:g}": float(curve[rate]) for rate in fps},
            "froc_mean_0.5_4": float(np.mean([curve[r] for r in (0.5, 1.0, 2.0, 4.0)])),
            "AP50": average_precision(
                self.coco_true_positive[self._coco_order], per_detection[self._coco_order], float((w * self.lesions).sum())
            ),
            "max_fp_per_image": self.max_fp_per_image(w),
        }
        if self.num_classes > 1:
            result.update(self.type_metrics(w))
        return result

    def type_metrics(self, weights: np.ndarray | None = None) -> dict[str, Any]:
        """The type metric, of the images drawn ``weights`` times:

        - ``AP50_by_type``: per type t, COCO AP50 of every detection scored P(lesion) x P(t | lesion)
          against the lesions of type t (NaN for a type without lesions);
        - ``mAP50_types``: their mean over the types that have lesions;
        - ``type_accuracy``: of the lesions a detection finds (IoU >= 0.5), the share whose best
          such detection names the right type;
        - ``type_recall``: per type t, of the lesions of type t a detection finds, the share
          typed t (NaN for a type none of whose lesions is found).
        """
        w = np.ones(self.num_images) if weights is None else np.asarray(weights, dtype=np.float64)
        per_detection = w[self.image]
        per_type = []
        for k, order in enumerate(self._typed_orders):
            count = float((w * self.lesions_by_type[:, k]).sum())
            per_type.append(average_precision(self.typed_true_positive[order, k], per_detection[order], count))
        valid = [v for v in per_type if np.isfinite(v)]
        lesion_weights = w[self.lesion_image]
        found = self.lesion_predicted_type > 0
        correct = found & (self.lesion_predicted_type == self.lesion_type)
        recall = {}
        for k, name in enumerate(self.type_names, start=1):
            mine = found & (self.lesion_type == k)
            total = float((lesion_weights * mine).sum())
            recall[name] = float((lesion_weights * (correct & mine)).sum() / total) if total > 0 else float("nan")
        return {
            "AP50_by_type": dict(zip(self.type_names, per_type)),
            "mAP50_types": float(np.mean(valid)) if valid else float("nan"),
            "type_accuracy": float((lesion_weights * correct).sum() / max((lesion_weights * found).sum(), 1e-12)),
            "type_recall": recall,
        }

    @property
    def type_names(self) -> list[str]:
        return list(LESION_TYPES) if self.num_classes == len(LESION_TYPES) else [str(k) for k in range(1, self.num_classes + 1)]

    def confusion_matrix(self) -> np.ndarray:
        """(K, K) counts: lesions of type i whose best matching detection says type j."""
        matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        found = self.lesion_predicted_type > 0
        np.add.at(matrix, (self.lesion_type[found] - 1, self.lesion_predicted_type[found] - 1), 1)
        return matrix

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        np.savez_compressed(path, **{f.name: np.asarray(getattr(self, f.name)) for f in fields(self)})
        return path

    @classmethod
    def load(cls, path: str | Path) -> Outcomes:
        with np.load(Path(path)) as data:
            values = {key: data[key] for key in data.files}
        values["num_classes"] = int(values["num_classes"])
        values["argmax_types"] = bool(values.get("argmax_types", False))
        if "typed_score" not in values:  # an old file: each detection counted for its argmax type only
            classes = values["num_classes"]
            one_hot = np.eye(classes, dtype=bool)[values["label"].astype(np.int64) - 1].reshape(-1, classes)
            values["typed_score"] = np.where(one_hot, values["score"][:, None], 0.0).astype(np.float32)
            values["typed_true_positive"] = one_hot & values["typed_true_positive"].reshape(-1, 1)
            values["typed_counted"] = one_hot & values["typed_counted"].reshape(-1, 1)
            values["argmax_types"] = True
        return cls(**values)
