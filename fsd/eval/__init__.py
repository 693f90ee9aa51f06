"""Evaluation of lesion detections: DeepLesion FROC (official semantics), COCO AP, plots, reports.

Inputs everywhere are lists with one entry per image: detections as (N, 5) x1, y1, x2, y2, score
and lesion boxes as (M, 4) x1, y1, x2, y2 (numpy arrays, torch tensors or nested lists), in
continuous pixel coordinates. Results are fractions in [0, 1].
"""

from fsd.eval.boxes import iobb_matrix, iou_matrix
from fsd.eval.coco import coco_metrics
from fsd.eval.froc import (
    MEAN_FP_RATES,
    deeplesion_froc,
    froc_curve,
    froc_mean,
)
from fsd.eval.inputs import EvaluationInputError
from fsd.eval.plots import plot_froc
from fsd.eval.report import evaluate_detections
from fsd.eval.sizes import DEFAULT_SIZE_BUCKETS_MM, sensitivity_by_size

__all__ = [
    "DEFAULT_SIZE_BUCKETS_MM",
    "MEAN_FP_RATES",
    "EvaluationInputError",
    "coco_metrics",
    "deeplesion_froc",
    "evaluate_detections",
    "froc_curve",
    "froc_mean",
    "iobb_matrix",
    "iou_matrix",
    "plot_froc",
    "sensitivity_by_size",
]
