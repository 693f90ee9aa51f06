"""IoU and IoBB on continuous pixel coordinates."""

from __future__ import annotations

import numpy as np
import pytest

from fsd.eval import iobb_matrix, iou_matrix


def test_iou_of_hand_computed_pairs():
    detections = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], dtype=float)
    lesions = np.array([[0, 0, 10, 10], [0, 0, 10, 5]], dtype=float)
    # row 0: identical -> 1; inside half -> 50/100
    # row 1: overlap 5x10=50, union 150 -> 1/3; with lesion 2: 5x5=25, union 100+50-25=125 -> .2
    # row 2: disjoint -> 0
    expected = np.array([[1.0, 0.5], [1 / 3, 0.2], [0.0, 0.0]])
    np.testing.assert_allclose(iou_matrix(detections, lesions), expected, rtol=0, atol=1e-12)


def test_iou_is_symmetric_and_touching_boxes_do_not_overlap():
    a = np.array([[0, 0, 4, 4], [1, 2, 7, 3.5]])
    b = np.array([[4, 0, 8, 4], [2, 1, 3, 9.0]])
    np.testing.assert_allclose(iou_matrix(a, b), iou_matrix(b, a).T)
    assert iou_matrix(a[:1], b[:1])[0, 0] == 0.0


def test_iou_uses_areas_without_the_plus_one_pixel_convention():
    # [0,0,2,1] (area 2) vs [0,0,1,1] (area 1): 1/2 exactly; "+1" areas would give 4/6
    assert iou_matrix(np.array([[0, 0, 2, 1.0]]), np.array([[0, 0, 1, 1.0]]))[0, 0] == 0.5


def test_iobb_divides_by_the_detected_box_area():
    detections = np.array([[2, 2, 7, 7], [0, 0, 20, 20], [3, 3, 3, 8]], dtype=float)
    lesion = np.array([[0, 0, 10, 10]], dtype=float)
    # inside: 25/25; covering: 100/400; zero-area detection: 0
    np.testing.assert_allclose(iobb_matrix(detections, lesion)[:, 0], [1.0, 0.25, 0.0])


def test_empty_inputs_give_empty_matrices():
    assert iou_matrix(np.zeros((0, 4)), np.zeros((3, 4))).shape == (0, 3)
    assert iobb_matrix(np.zeros((2, 4)), np.zeros((0, 4))).shape == (2, 0)


@pytest.mark.parametrize("shift", [0.0, 0.25, 3.0, 11.0])
def test_iou_of_shifted_unit_squares(shift):
    # two 10x10 squares shifted by s along x: (10 - s) * 10 / (200 - (10 - s) * 10)
    overlap = max(0.0, 10 - shift) * 10
    expected = overlap / (200 - overlap)
    value = iou_matrix(np.array([[shift, 0, 10 + shift, 10]]), np.array([[0, 0, 10, 10.0]]))[0, 0]
    assert value == pytest.approx(expected, abs=1e-12)
