"""Hand-worked DeepLesion FROC cases; the expected numbers are derived in the comments."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from deeplesion_official_reference import official_froc

from fsd.errors import DataError
from fsd.eval import EvaluationInputError, deeplesion_froc, froc_curve, froc_mean


def four_image_case() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Four images, four lesions (A; B and C; none; D), nine detections.

    Ranked by score:
      0.95 img0 exact A                      -> TP (A)
      0.90 img2 (no lesions)                 -> FP #1
      0.85 img1 [0,0,4,5] vs B: IoU 16/20=.8 -> TP (B)
      0.80 img3 far from D                   -> FP #2
      0.75 img0 exact A again                -> neither (A already hit)
      0.70 img3 [5,5,15,10] vs D: 50/100=.5  -> TP (D) (IoU exactly 0.5 counts)
      0.60 img2                              -> FP #3
      0.50 img1 [30,30,40,34.9] vs C: .49    -> FP #4
      0.40 img1 exact C                      -> TP (C)
    N = 4 images, so f FPs/image allows floor(4f) FPs:
      f=0.125: 0 FPs -> stop at FP #1 -> {A}        -> 1/4
      f=0.25 : 1 FP  -> stop at FP #2 -> {A,B}      -> 2/4
      f=0.5  : 2 FPs -> stop at FP #3 -> {A,B,D}    -> 3/4
      f=0.75 : 3 FPs -> stop at FP #4 -> {A,B,D}    -> 3/4
      f=1    : 4 FPs -> fewer than 5 FPs, all count -> 4/4
    """
    ground_truths = [
        np.array([[10, 10, 20, 20]], dtype=float),
        np.array([[0, 0, 4, 4], [30, 30, 40, 40]], dtype=float),
        np.zeros((0, 4)),
        np.array([[5, 5, 15, 15]], dtype=float),
    ]
    predictions = [
        np.array([[10, 10, 20, 20, 0.95], [10, 10, 20, 20, 0.75]]),
        np.array([[0, 0, 4, 5, 0.85], [30, 30, 40, 34.9, 0.50], [30, 30, 40, 40, 0.40]]),
        np.array([[1, 1, 2, 2, 0.90], [1, 1, 2, 2, 0.60]]),
        np.array([[50, 50, 60, 60, 0.80], [5, 5, 15, 10, 0.70]]),
    ]
    return predictions, ground_truths


def test_four_image_case_matches_the_hand_derivation():
    predictions, ground_truths = four_image_case()
    froc = deeplesion_froc(predictions, ground_truths, fps=(0.125, 0.25, 0.5, 0.75, 1, 2, 16))
    assert froc == {0.125: 0.25, 0.25: 0.5, 0.5: 0.75, 0.75: 0.75, 1.0: 1.0, 2.0: 1.0, 16.0: 1.0}


def test_four_image_curve_lists_every_ranked_detection():
    # cumulative FPs 0,1,1,2,2,2,3,4,4 over 4 images; cumulative hits 1,1,2,2,2,3,3,3,4 over 4 lesions
    fp_per_image, sensitivity = froc_curve(*four_image_case())
    np.testing.assert_array_equal(fp_per_image, np.array([0, 1, 1, 2, 2, 2, 3, 4, 4]) / 4)
    np.testing.assert_array_equal(sensitivity, np.array([1, 1, 2, 2, 2, 3, 3, 3, 4]) / 4)


def test_default_rates_and_mean():
    # f = 0.5, 1, 2, 4 -> 0.75, 1, 1, 1: mean 0.9375
    froc = deeplesion_froc(*four_image_case())
    assert list(froc) == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    assert froc_mean(froc) == pytest.approx(0.9375)
    assert froc_mean(froc, fps=(0.5,)) == 0.75


def test_froc_mean_names_a_missing_rate():
    with pytest.raises(EvaluationInputError, match="no sensitivity at \\[0.5\\]"):
        froc_mean({1.0: 0.5, 2.0: 0.6, 4.0: 0.7})


def test_a_repeat_detection_of_a_found_lesion_is_neither_true_nor_false_positive():
    # 2 images. Ranked: 0.9 TP L1 (img0); 0.8 same box again -> neither; 0.7 img1 far away -> FP #1;
    # 0.6 TP L2 (img1). At 0.5 FP/image 1 FP is allowed and there is only one FP, so everything
    # counts: 2/2. Were the repeat counted as an FP, the budget would end at 0.7 and give 1/2.
    ground_truths = [np.array([[0, 0, 10, 10.0]]), np.array([[20, 20, 30, 30.0]])]
    predictions = [
        np.array([[0, 0, 10, 10, 0.9], [0, 0, 10, 10, 0.8]]),
        np.array([[60, 60, 70, 70, 0.7], [20, 20, 30, 30, 0.6]]),
    ]
    # at 0.25 FP/image no FP is allowed: stop at FP #1 (score 0.7) -> only L1 -> 1/2
    assert deeplesion_froc(predictions, ground_truths, fps=(0.25, 0.5)) == {0.25: 0.5, 0.5: 1.0}


def test_one_detection_hits_two_overlapping_lesions():
    # L1 = [0,0,10,10] (area 100), L2 = [0,0,10,12] (area 120); detection [0,0,10,11] (area 110):
    # IoU with L1 = 100/110 = .91, with L2 = 110/120 = .92 -> both hit by one detection: 2/2.
    # Marking only the best-overlapping lesion would give 1/2.
    ground_truths = [np.array([[0, 0, 10, 10], [0, 0, 10, 12]], dtype=float)]
    predictions = [np.array([[0, 0, 10, 11, 0.9], [40, 40, 50, 50, 0.8]])]
    assert deeplesion_froc(predictions, ground_truths, fps=(0, 1)) == {0.0: 1.0, 1.0: 1.0}


def test_equal_scores_keep_input_order():
    # Both detections score 0.5. Image order decides: an FP listed first stops the budget of
    # 0 FPs before the TP (0/1); with the images swapped the TP comes first (1/1).
    lesion = np.array([[0, 0, 10, 10.0]])
    fp_image = (np.array([[50, 50, 60, 60, 0.5]]), np.zeros((0, 4)))
    tp_image = (np.array([[0, 0, 10, 10, 0.5]]), lesion)
    fp_first = deeplesion_froc([fp_image[0], tp_image[0]], [fp_image[1], tp_image[1]], fps=(0,))
    tp_first = deeplesion_froc([tp_image[0], fp_image[0]], [tp_image[1], fp_image[1]], fps=(0,))
    assert fp_first == {0.0: 0.0}
    assert tp_first == {0.0: 1.0}


def test_fp_budget_is_decided_like_the_official_float_comparison():
    # 100 images, 0.29 FPs/image: 0.29 * 100 = 28.999999999999996 in floating point, but the
    # official curve has the point 29/100 == 0.29, so 29 FPs are allowed. Ranked: 29 FPs, then the
    # TP, then FP #30 -> the TP counts (1/1); a naive floor(0.29 * 100) = 28 would give 0/1.
    predictions = [np.zeros((0, 5)) for _ in range(100)]
    ground_truths = [np.zeros((0, 4)) for _ in range(100)]
    ground_truths[0] = np.array([[0, 0, 10, 10.0]])
    predictions[0] = np.array([[0, 0, 10, 10, 0.5]])
    for image in range(1, 31):
        score = 0.9 if image <= 29 else 0.1
        predictions[image] = np.array([[0, 0, 10, 10, score]])
    assert deeplesion_froc(predictions, ground_truths, fps=(0.29, 0.28)) == {0.29: 1.0, 0.28: 0.0}
    assert official_froc(predictions, ground_truths, (0.29, 0.28)) == {0.29: 1.0, 0.28: 0.0}


def test_iou_has_no_plus_one_pixel_convention():
    # detection [0,0,10,10] vs lesion [0,0,10,4.9]: IoU = 49/100 = .49 -> miss (0/1).
    # With "+1" areas it would be 11*5.9 / 121 = .536 -> a hit.
    froc = deeplesion_froc([np.array([[0, 0, 10, 10, 0.9]])], [np.array([[0, 0, 10, 4.9]])], fps=(16,))
    assert froc == {16.0: 0.0}


def test_iobb_accepts_a_detection_inside_a_larger_lesion():
    # detection [2,2,7,7] (area 25) inside lesion [0,0,10,10]: IoU = 25/100 = .25 (miss),
    # IoBB = 25/25 = 1 (hit). A detection [0,0,20,20] covering the lesion: IoBB = 100/400 = .25.
    lesions = [np.array([[0, 0, 10, 10.0]])]
    inside = [np.array([[2, 2, 7, 7, 0.9]])]
    covering = [np.array([[0, 0, 20, 20, 0.9]])]
    assert deeplesion_froc(inside, lesions, fps=(1,), overlap="iou") == {1.0: 0.0}
    assert deeplesion_froc(inside, lesions, fps=(1,), overlap="iobb") == {1.0: 1.0}
    assert deeplesion_froc(covering, lesions, fps=(1,), overlap="iobb") == {1.0: 0.0}


def test_the_threshold_is_adjustable():
    # IoU .8 detection: a hit at 0.5 and 0.8, a miss at 0.9
    lesions = [np.array([[0, 0, 4, 4.0]])]
    detections = [np.array([[0, 0, 4, 5, 0.9]])]
    assert deeplesion_froc(detections, lesions, fps=(1,), iou=0.8) == {1.0: 1.0}
    assert deeplesion_froc(detections, lesions, fps=(1,), iou=0.9) == {1.0: 0.0}


def test_no_detections_at_all_gives_zero_sensitivity():
    froc = deeplesion_froc([np.zeros((0, 5)), []], [np.array([[0, 0, 4, 4.0]]), []])
    assert set(froc.values()) == {0.0}
    fp_per_image, sensitivity = froc_curve([np.zeros((0, 5))], [np.array([[0, 0, 4, 4.0]])])
    assert fp_per_image.shape == sensitivity.shape == (0,)


def test_ground_truth_without_lesions_is_refused_with_a_clear_error():
    with pytest.raises(EvaluationInputError, match="no lesion") as caught:
        deeplesion_froc([np.array([[0, 0, 1, 1, 0.5]])], [np.zeros((0, 4))])
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, DataError)


def test_numpy_torch_and_lists_give_the_same_result():
    predictions, ground_truths = four_image_case()
    expected = deeplesion_froc(predictions, ground_truths)
    as_lists = deeplesion_froc([p.tolist() for p in predictions], [g.tolist() for g in ground_truths])
    as_tensors = deeplesion_froc(
        [torch.tensor(p, dtype=torch.float32, requires_grad=True) for p in predictions],
        [torch.tensor(g) for g in ground_truths],
    )
    assert as_lists == expected
    # float32 rounding of 34.9 keeps the IoU below .5, so tensors agree too
    assert as_tensors == expected


@pytest.mark.parametrize(
    ("predictions", "ground_truths", "message"),
    [
        ([np.zeros((0, 5))], [np.zeros((0, 4)), np.zeros((0, 4))], "1 images but the ground truth covers 2"),
        ([], [], "no images"),
        ([np.zeros((2, 4))], [np.array([[0, 0, 1, 1.0]])], "shape \\(N, 5\\)"),
        ([np.array([[0, 0, 1, 1, np.nan]])], [np.array([[0, 0, 1, 1.0]])], "NaN"),
        ([np.array([[5, 0, 1, 1, 0.5]])], [np.array([[0, 0, 1, 1.0]])], "x2 < x1"),
        ([np.zeros((0, 5))], [np.array([[0, 0, 0, 1.0]])], "x2 > x1"),
    ],
)
def test_bad_inputs_are_refused_with_a_sentence(predictions, ground_truths, message):
    with pytest.raises(EvaluationInputError, match=message):
        deeplesion_froc(predictions, ground_truths)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fps": (-1,)}, ">= 0"),
        ({"iou": 0.0}, "\\(0, 1\\]"),
        ({"overlap": "giou"}, "overlap must be one of"),
    ],
)
def test_bad_options_are_refused(kwargs, message):
    predictions, ground_truths = four_image_case()
    with pytest.raises(EvaluationInputError, match=message):
        deeplesion_froc(predictions, ground_truths, **kwargs)
