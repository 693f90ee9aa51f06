"""Per-detection outcomes reproduce the full evaluation, and weights are resampled image sets."""

from __future__ import annotations

import numpy as np
import pytest

from fsd.eval import evaluate_detections
from fsd.eval.outcomes import Outcomes

NUM_CLASSES = 3


def random_case(seed: int, images: int = 40, decimals: int | None = 3):
    rng = np.random.default_rng(seed)
    boxes, scores, labels, gt_boxes, gt_labels = [], [], [], [], []
    for _ in range(images):
        lesions = rng.integers(0, 4)
        xy = rng.uniform(0, 80, size=(lesions, 2))
        gt = np.concatenate([xy, xy + rng.uniform(6, 30, size=(lesions, 2))], axis=1)
        near = gt[rng.integers(0, lesions, size=rng.integers(0, 6))] + rng.normal(0, 3, size=(0, 4)).sum() if lesions else np.zeros((0, 4))
        if lesions:
            near = near + rng.normal(0, 3, size=near.shape)
        far_xy = rng.uniform(0, 80, size=(rng.integers(0, 12), 2))
        far = np.concatenate([far_xy, far_xy + rng.uniform(5, 25, size=far_xy.shape)], axis=1)
        detections = np.concatenate([near, far]).reshape(-1, 4)
        detections[:, 2:] = np.maximum(detections[:, 2:], detections[:, :2] + 1)
        boxes.append(detections)
        raw = rng.uniform(0, 1, size=len(detections))
        scores.append(raw if decimals is None else np.round(raw, decimals))  # ties on purpose
        sure = rng.random(len(detections)) < 0.3  # some detections certain of one type (zeros elsewhere)
        soft = rng.dirichlet(np.ones(NUM_CLASSES), size=len(detections))
        hard = np.eye(NUM_CLASSES)[rng.integers(0, NUM_CLASSES, size=len(detections))]
        labels.append(np.where(sure[:, None], hard, soft).reshape(-1, NUM_CLASSES))
        gt_boxes.append(gt)
        gt_labels.append(rng.integers(1, NUM_CLASSES + 1, size=lesions))
    return boxes, scores, labels, gt_boxes, gt_labels


def full_evaluation(boxes, scores, type_scores, gt_boxes, gt_labels):
    predictions = [np.concatenate([b, s[:, None]], axis=1) for b, s in zip(boxes, scores)]
    return evaluate_detections(
        predictions, gt_boxes, labels=gt_labels, type_scores=type_scores, num_classes=NUM_CLASSES, class_names=["a", "b", "c"]
    )


@pytest.mark.parametrize("seed", range(4))
def test_outcomes_reproduce_the_official_froc_and_pycocotools(seed: int):
    case = random_case(seed)
    report = full_evaluation(*case)
    outcomes = Outcomes.from_predictions(*case, patients=list(range(len(case[0]))), num_classes=NUM_CLASSES)
    metrics = outcomes.metrics()
    for rate, value in report["froc"].items():
        assert metrics["froc"][rate] == pytest.approx(value, abs=1e-12), rate
    assert metrics["froc_mean_0.5_4"] == pytest.approx(report["froc_mean_0.5_4"], abs=1e-12)
    assert metrics["AP50"] == pytest.approx(report["AP50"], abs=1e-6)
    assert metrics["mAP50_types"] == pytest.approx(report["mAP50_types"], abs=1e-6)
    for (name, value), expected in zip(metrics["AP50_by_type"].items(), report["per_type_AP50"].values()):
        assert value == pytest.approx(expected, abs=1e-6, nan_ok=True), name
    assert metrics["type_accuracy"] == pytest.approx(report["type_accuracy"])


def test_weights_are_the_resampled_image_set():
    case = random_case(7, decimals=None)  # copies of an image tie with each other only
    outcomes = Outcomes.from_predictions(*case, patients=list(range(len(case[0]))), num_classes=NUM_CLASSES)
    rng = np.random.default_rng(0)
    drawn = rng.integers(0, len(case[0]), size=len(case[0]))
    resampled = tuple([part[i] for i in drawn] for part in case)
    weights = np.bincount(drawn, minlength=len(case[0]))
    expected = full_evaluation(*resampled)
    actual = outcomes.metrics(weights)
    for rate, value in expected["froc"].items():
        assert actual["froc"][rate] == pytest.approx(value, abs=1e-12), rate
    assert actual["AP50"] == pytest.approx(expected["AP50"], abs=1e-6)
    assert actual["mAP50_types"] == pytest.approx(expected["mAP50_types"], abs=1e-6)


def certain(labels):
    return [np.eye(NUM_CLASSES)[np.asarray(image) - 1].reshape(-1, NUM_CLASSES) for image in labels]


def test_type_accuracy_and_confusion_matrix_count_each_lesions_best_detection():
    boxes = [np.array([[10, 10, 30, 30], [11, 11, 31, 31], [50, 50, 70, 70.0]])]
    scores = [np.array([0.9, 0.8, 0.7])]
    type_scores = [np.array([[0.3, 0.6, 0.1], [0.9, 0.05, 0.05], [0.1, 0.1, 0.8]])]
    outcomes = Outcomes.from_predictions(boxes, scores, type_scores, [np.array([[10, 10, 30, 30], [50, 50, 70, 70.0]])], [np.array([1, 3])], [0], 3)
    metrics = outcomes.metrics()
    assert metrics["type_accuracy"] == pytest.approx(0.5)  # the best detection of lesion 1 says type 2
    assert outcomes.confusion_matrix().tolist() == [[0, 1, 0], [0, 0, 0], [0, 0, 1]]
    # recall by type among found lesions: type 1 found but typed 2, type 3 right, type 2 has no lesion
    assert metrics["type_recall"]["1"] == 0.0
    assert metrics["type_recall"]["3"] == 1.0
    assert np.isnan(metrics["type_recall"]["2"])


def test_type_recall_follows_resampled_lesions():
    boxes = [np.array([[10, 10, 30, 30.0]]), np.array([[10, 10, 30, 30.0]])]
    outcomes = Outcomes.from_predictions(
        boxes, [np.array([0.9]), np.array([0.9])], certain([[1], [2]]), boxes, [np.array([1]), np.array([1])], [0, 1], NUM_CLASSES
    )
    assert outcomes.metrics()["type_recall"]["1"] == 0.5
    assert outcomes.metrics(np.array([3, 1]))["type_recall"]["1"] == 0.75
    assert outcomes.metrics(np.array([0, 2]))["type_recall"]["1"] == 0.0


def test_old_result_files_read_as_the_argmax_metric(tmp_path):
    """A file from before every detection counted for every type holds 1-D typed arrays (each
    detection for its argmax type only); read back, it gives the numbers the old metric gave."""
    case = random_case(5)
    boxes, scores, type_scores, gt_boxes, gt_labels = case
    labels = [t.argmax(axis=1) + 1 for t in type_scores]
    sure = Outcomes.from_predictions(boxes, scores, certain(labels), gt_boxes, gt_labels, list(range(len(boxes))), NUM_CLASSES)
    old = {f: getattr(sure, f) for f in ("image", "score", "label", "lesion_hits", "false_positive", "coco_true_positive", "coco_counted")}
    old["typed_true_positive"] = sure.typed_true_positive[np.arange(len(sure.label)), sure.label - 1]
    old["typed_counted"] = sure.typed_counted[np.arange(len(sure.label)), sure.label - 1]
    for f in ("lesions", "lesions_by_type", "lesion_image", "lesion_type", "lesion_predicted_type", "patient", "num_classes"):
        old[f] = np.asarray(getattr(sure, f))
    np.savez_compressed(tmp_path / "old.npz", **old)
    loaded = Outcomes.load(tmp_path / "old.npz")
    assert loaded.argmax_types and not sure.argmax_types
    assert loaded.metrics()["mAP50_types"] == pytest.approx(sure.metrics()["mAP50_types"], abs=1e-12)


def test_outcomes_survive_a_round_trip(tmp_path):
    case = random_case(3)
    outcomes = Outcomes.from_predictions(*case, patients=list(range(len(case[0]))), num_classes=NUM_CLASSES)
    loaded = Outcomes.load(outcomes.save(tmp_path / "outcomes.npz"))
    assert loaded.metrics() == outcomes.metrics()
