"""The report dict written to report.json: stable keys, JSON-safe values, consistent numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fsd.eval import coco_metrics, deeplesion_froc, evaluate_detections

LESIONS = [
    np.array([[0, 0, 10, 10], [20, 20, 40, 40]], dtype=float),
    np.array([[5, 5, 9, 9.0]]),
    np.zeros((0, 4)),
]
PREDICTIONS = [
    np.array([[0, 0, 10, 10, 0.9], [50, 50, 60, 60, 0.8], [20, 20, 40, 44, 0.3]]),
    np.array([[5, 5, 9, 9, 0.6]]),
    np.array([[0, 0, 5, 5, 0.7]]),
]
KEYS = [
    "num_images",
    "num_lesions",
    "num_detections",
    "iou",
    "overlap",
    "froc",
    "froc_mean_0.5_4",
    "AP",
    "AP50",
    "AP75",
    "per_type_AP",
    "per_type_AP50",
    "mAP_types",
    "mAP50_types",
    "type_accuracy",
    "type_recall",
    "confusion_matrix",
    "sensitivity_by_size",
    "sensitivity_by_size_fp_per_image",
]


def test_binary_report_has_every_key_and_agrees_with_the_metrics():
    report = evaluate_detections(PREDICTIONS, LESIONS)
    assert list(report) == KEYS
    json.dumps(report, allow_nan=False)
    assert (report["num_images"], report["num_lesions"], report["num_detections"]) == (3, 3, 5)
    froc = deeplesion_froc(PREDICTIONS, LESIONS)
    assert report["froc"] == {f"{rate:g}": value for rate, value in froc.items()}
    assert list(report["froc"]) == ["0.5", "1", "2", "4", "8", "16"]
    assert report["froc_mean_0.5_4"] == pytest.approx((froc[0.5] + froc[1] + froc[2] + froc[4]) / 4)
    coco = coco_metrics(PREDICTIONS, LESIONS)
    assert (report["AP"], report["AP50"], report["AP75"]) == (coco["AP"], coco["AP50"], coco["AP75"])
    assert report["per_type_AP"] == {} and report["mAP_types"] is None
    assert report["sensitivity_by_size"] == {}


def test_hand_checked_froc_values():
    # ranked: .9 TP; .8 FP #1; .7 FP #2 (image without lesions); .6 TP; .3 TP (IoU 400/480 = .83).
    # 3 images: 0.5 FP/image allows 1 FP -> stop at FP #2 -> 1/3; 1 FP/image allows 3 -> 3/3
    report = evaluate_detections(PREDICTIONS, LESIONS, fps=(0.5, 1))
    assert report["froc"] == {"0.5": pytest.approx(1 / 3), "1": 1.0}
    # the mean over 0.5, 1, 2, 4 is reported even when only some of those rates were asked for
    assert report["froc_mean_0.5_4"] == pytest.approx((1 / 3 + 3) / 4)


def test_multi_type_report_with_sizes_uses_none_for_undefined_values():
    labels = [np.array([1, 2]), np.array([1]), np.zeros(0, dtype=int)]
    pred_labels = [np.array([1, 1, 2]), np.array([1]), np.array([3])]
    report = evaluate_detections(
        PREDICTIONS,
        LESIONS,
        labels=labels,
        type_scores=[np.eye(3)[image - 1] for image in pred_labels],
        sizes_mm=[np.array([8.0, 16.0]), np.array([3.2]), np.zeros(0)],
        num_classes=3,
        class_names=["liver", "lung", "kidney"],
    )
    text = json.dumps(report, allow_nan=False)
    assert list(json.loads(text)) == KEYS
    # liver (type 1): ranked exact TP (.9), FP (.8), exact TP (.6) -> precision 1 up to recall 1/2,
    # 2/3 at recall 1: COCO's 101-point AP = (51 * 1 + 50 * 2/3) / 101 at every IoU threshold.
    liver = (51 + 50 * 2 / 3) / 101
    assert report["per_type_AP"]["liver"] == pytest.approx(liver)
    assert report["per_type_AP50"]["liver"] == pytest.approx(liver)
    # lung (type 2): one detection with IoU 400/480 = .83 -> a match at thresholds .50 to .80 only
    assert report["per_type_AP"]["lung"] == pytest.approx(0.7)
    assert report["per_type_AP50"]["lung"] == pytest.approx(1.0)
    # kidney (type 3) has no ground truth: undefined, left out of the mean
    assert report["per_type_AP"]["kidney"] is None
    assert report["mAP_types"] == pytest.approx((liver + 0.7) / 2)
    assert report["mAP50_types"] == pytest.approx((liver + 1.0) / 2)
    # every found lesion's best detection names its type; no kidney lesion to find
    assert report["type_accuracy"] == 1.0
    assert report["type_recall"] == {"liver": 1.0, "lung": 1.0, "kidney": None}
    assert report["confusion_matrix"] == [[2, 0, 0], [0, 1, 0], [0, 0, 0]]
    # at 4 FP/image everything is found; there is no lesion of 30 mm or more
    assert report["sensitivity_by_size"] == {"<10mm": 1.0, "10-30mm": 1.0, ">=30mm": None}
    assert report["sensitivity_by_size_fp_per_image"] == 4.0


def test_iobb_choice_is_reported():
    report = evaluate_detections(PREDICTIONS, LESIONS, overlap="iobb", iou=0.4)
    assert (report["overlap"], report["iou"]) == ("iobb", 0.4)
