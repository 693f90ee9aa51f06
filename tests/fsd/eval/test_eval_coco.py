"""COCO AP through pycocotools, built in memory from per-image x1y1x2y2 arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fsd.constants import LESION_TYPES
from fsd.eval import EvaluationInputError, coco_metrics
from fsd.eval.coco import boxes_to_coco_xywh, build_coco_ground_truth

LESIONS = [
    np.array([[10, 10, 20, 20], [40, 40, 70, 60]], dtype=float),
    np.zeros((0, 4)),
    np.array([[5, 5, 25, 15]], dtype=float),
]


def with_scores(boxes: list[np.ndarray], score: float = 0.9) -> list[np.ndarray]:
    return [np.hstack([b, np.full((len(b), 1), score)]) for b in boxes]


def test_perfect_detections_score_one(capsys):
    metrics = coco_metrics(with_scores(LESIONS), LESIONS)
    assert metrics == {"AP": 1.0, "AP50": 1.0, "AP75": 1.0}
    assert capsys.readouterr().out == ""  # pycocotools' printing is silenced


def test_shifted_boxes_score_lower_and_xywh_is_converted_correctly():
    # each detection shifted right by 20% of its width: e.g. [12,10,22,20] vs [10,10,20,20] has
    # IoU 80/120 = 2/3. So it is a match at IoU .50, .55, .60, .65 and a miss from .70 on:
    # AP50 = 1, AP75 = 0, AP = 4/10. (Feeding x1y1x2y2 as xywh would give IoU .75 instead.)
    shifted = [b + np.array([0.2, 0, 0.2, 0]) * (b[:, 2:3] - b[:, 0:1]) for b in LESIONS]
    metrics = coco_metrics(with_scores(shifted), LESIONS)
    assert metrics["AP50"] == pytest.approx(1.0)
    assert metrics["AP75"] == pytest.approx(0.0)
    assert metrics["AP"] == pytest.approx(0.4)


def test_false_positive_in_an_image_without_lesions_counts():
    # one lesion; an FP (score .9) on an image without lesions ranks above the TP (score .8):
    # precision at full recall is 1/2, so AP50 = 0.5
    lesions = [np.array([[0, 0, 10, 10.0]]), np.zeros((0, 4))]
    predictions = [np.array([[0, 0, 10, 10, 0.8]]), np.array([[0, 0, 10, 10, 0.9]])]
    assert coco_metrics(predictions, lesions)["AP50"] == pytest.approx(0.5)
    # ranked below the TP it costs nothing (precision is interpolated)
    predictions[1][0, 4] = 0.1
    assert coco_metrics(predictions, lesions)["AP50"] == pytest.approx(1.0)


def test_no_detections_give_zero():
    metrics = coco_metrics([np.zeros((0, 5)), [], np.zeros((0, 5))], LESIONS)
    assert metrics == {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}


def certain(labels, num_classes):
    """Type scores of detections that are sure of their type."""
    return [np.eye(num_classes)[np.asarray(image, dtype=int) - 1].reshape(-1, num_classes) for image in labels]


def test_per_type_ap_and_its_mean_over_present_types():
    # type a: found with the right label; type b: found but labelled c; type c: no ground truth.
    labels = [np.array([1, 2]), np.zeros(0, dtype=int), np.array([1])]
    pred_labels = [np.array([1, 3]), np.zeros(0, dtype=int), np.array([1])]
    metrics = coco_metrics(
        with_scores(LESIONS), LESIONS, labels, certain(pred_labels, 3), num_classes=3, class_names=["a", "b", "c"]
    )
    assert metrics["AP"] == 1.0  # class-agnostic: labels ignored
    assert metrics["per_type_AP"]["a"] == pytest.approx(1.0)
    assert metrics["per_type_AP"]["b"] == pytest.approx(0.0)
    assert math.isnan(metrics["per_type_AP"]["c"])
    assert metrics["per_type_AP50"]["a"] == pytest.approx(1.0)
    assert metrics["mAP_types"] == pytest.approx(0.5)
    assert metrics["mAP50_types"] == pytest.approx(0.5)


def test_every_detection_counts_for_every_type_by_its_type_probability():
    # one lesion of type b and one of type a; the detection of the b lesion says a (0.6) rather
    # than b (0.4). Ranked only under its argmax type it would never count for b; scored
    # P(lesion) x P(b | lesion) it is the only candidate for b, so b's AP is 1.
    lesions = [np.array([[10.0, 10, 30, 30]]), np.array([[40.0, 40, 60, 60]])]
    predictions = [np.array([[10.0, 10, 30, 30, 0.9]]), np.array([[40.0, 40, 60, 60, 0.8]])]
    labels = [np.array([2]), np.array([1])]
    type_scores = [np.array([[0.6, 0.4]]), np.array([[1.0, 0.0]])]
    metrics = coco_metrics(predictions, lesions, labels, type_scores, num_classes=2, class_names=["a", "b"])
    assert metrics["per_type_AP50"]["b"] == pytest.approx(1.0)
    # for type a the a lesion's detection (.8 x 1.0) ranks above the b lesion's (.9 x .6 = .54),
    # so the a lesion is found first and the false a comes after it: AP 1
    assert metrics["per_type_AP50"]["a"] == pytest.approx(1.0)
    # sure of the wrong type: nothing counts for b
    sure = coco_metrics(predictions, lesions, labels, certain([[1], [1]], 2), num_classes=2, class_names=["a", "b"])
    assert sure["per_type_AP50"]["b"] == pytest.approx(0.0)


def test_a_confident_wrong_type_ranks_below_a_right_one():
    # two lesions of type a; the first detection (0.9) thinks b (P(a) 0.2), the second (0.5) a (0.9):
    # for type a the second ranks first (.45 > .18) and precision stays 1
    lesions = [np.array([[10.0, 10, 30, 30], [40.0, 40, 60, 60]])]
    predictions = [np.array([[10.0, 10, 30, 30, 0.9], [40.0, 40, 60, 60, 0.5]])]
    type_scores = [np.array([[0.2, 0.8], [0.9, 0.1]])]
    metrics = coco_metrics(predictions, lesions, [np.array([1, 1])], type_scores, num_classes=2, class_names=["a", "b"])
    assert metrics["per_type_AP50"]["a"] == pytest.approx(1.0)
    assert math.isnan(metrics["per_type_AP50"]["b"])


def test_eight_types_are_named_after_deeplesion_lesion_types():
    labels = [np.array([4, 5]), np.zeros(0, dtype=int), np.array([8])]
    metrics = coco_metrics(with_scores(LESIONS), LESIONS, labels, certain(labels, 8), num_classes=8)
    assert list(metrics["per_type_AP"]) == list(LESION_TYPES)
    assert metrics["per_type_AP"]["liver"] == pytest.approx(1.0)
    assert metrics["per_type_AP"]["pelvis"] == pytest.approx(1.0)
    assert math.isnan(metrics["per_type_AP"]["bone"])
    assert metrics["mAP_types"] == pytest.approx(1.0)


def test_labels_outside_the_classes_are_refused():
    labels = [np.array([-1, 1]), np.zeros(0, dtype=int), np.array([1])]
    scores = certain([np.array([1, 1]), np.zeros(0, dtype=int), np.array([1])], 2)
    with pytest.raises(EvaluationInputError, match="must lie in 1..2"):
        coco_metrics(with_scores(LESIONS), LESIONS, labels, scores, num_classes=2)
    with pytest.raises(EvaluationInputError, match="type_scores"):
        coco_metrics(with_scores(LESIONS), LESIONS, labels, None, num_classes=2)
    with pytest.raises(EvaluationInputError, match="distinct names"):
        coco_metrics(with_scores(LESIONS), LESIONS, labels, scores, num_classes=2, class_names=["x"])


def test_type_scores_must_be_probabilities_one_row_per_detection():
    labels = [np.array([1, 1]), np.zeros(0, dtype=int), np.array([1])]
    wrong_rows = [np.ones((1, 2)) * 0.5, np.zeros((0, 2)), np.ones((1, 2)) * 0.5]
    with pytest.raises(EvaluationInputError, match="one row per detection"):
        coco_metrics(with_scores(LESIONS), LESIONS, labels, wrong_rows, num_classes=2)
    above_one = [np.full((2, 2), 1.5), np.zeros((0, 2)), np.full((1, 2), 0.5)]
    with pytest.raises(EvaluationInputError, match="probabilities"):
        coco_metrics(with_scores(LESIONS), LESIONS, labels, above_one, num_classes=2)


def test_ground_truth_without_lesions_is_refused():
    with pytest.raises(EvaluationInputError, match="no lesion"):
        coco_metrics([np.zeros((0, 5))], [np.zeros((0, 4))])


def test_xywh_conversion_and_annotation_fields():
    boxes = np.array([[10, 20, 15, 50], [0.5, 1.5, 2.0, 2.0]])
    np.testing.assert_array_equal(boxes_to_coco_xywh(boxes), [[10, 20, 5, 30], [0.5, 1.5, 1.5, 0.5]])
    coco = build_coco_ground_truth([boxes], [np.array([1, 1])], {1: "lesion"})
    annotations = coco.dataset["annotations"]
    assert [a["area"] for a in annotations] == [150.0, 0.75]
    assert [a["iscrowd"] for a in annotations] == [0, 0]
    assert min(a["id"] for a in annotations) == 1
