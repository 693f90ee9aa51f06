"""Property tests of the DeepLesion FROC: agreement with a brute-force official reference, plus
invariants every correct FROC has (monotone, bounded, image order irrelevant, ...)."""

from __future__ import annotations

import numpy as np
from deeplesion_official_reference import official_curve, official_froc
from hypothesis import given, settings
from hypothesis import strategies as st
from lesion_case_strategies import fp_rates, lesion_cases

from fsd.eval import deeplesion_froc, froc_curve, sensitivity_by_size

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)


@PROPERTY_SETTINGS
@given(data=st.data(), overlap=st.sampled_from(["iou", "iobb"]), threshold=st.sampled_from([0.3, 0.5, 0.7]))
def test_sensitivities_equal_the_official_procedure(data, overlap, threshold):
    predictions, ground_truths = data.draw(lesion_cases())
    rates = data.draw(fp_rates(len(ground_truths)))
    ours = deeplesion_froc(predictions, ground_truths, fps=rates, iou=threshold, overlap=overlap)
    reference = official_froc(predictions, ground_truths, rates, threshold, overlap)
    assert ours == reference


@PROPERTY_SETTINGS
@given(case=lesion_cases(), overlap=st.sampled_from(["iou", "iobb"]))
def test_curve_equals_the_official_cumulative_curve(case, overlap):
    predictions, ground_truths = case
    fp_per_image, sensitivity = froc_curve(predictions, ground_truths, overlap=overlap)
    expected_fp, expected_sensitivity = official_curve(predictions, ground_truths, 0.5, overlap)
    np.testing.assert_array_equal(fp_per_image, expected_fp)
    np.testing.assert_array_equal(sensitivity, expected_sensitivity)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_curve_read_with_np_interp_gives_the_froc(data):
    predictions, ground_truths = data.draw(lesion_cases())
    rates = data.draw(fp_rates(len(ground_truths)))
    fp_per_image, sensitivity = froc_curve(predictions, ground_truths)
    froc = deeplesion_froc(predictions, ground_truths, fps=rates)
    if len(fp_per_image) == 0:
        assert set(froc.values()) == {0.0}
    else:
        read = [float(np.interp(rate, fp_per_image, sensitivity)) for rate in rates]
        assert read == [froc[rate] for rate in rates]


@PROPERTY_SETTINGS
@given(data=st.data())
def test_sensitivity_is_a_fraction_and_never_falls_as_more_fps_are_allowed(data):
    predictions, ground_truths = data.draw(lesion_cases())
    rates = sorted(data.draw(fp_rates(len(ground_truths))))
    values = list(deeplesion_froc(predictions, ground_truths, fps=rates).values())
    assert all(0.0 <= value <= 1.0 for value in values)
    assert values == sorted(values)
    num_lesions = sum(len(boxes) for boxes in ground_truths)
    assert all(abs(value * num_lesions - round(value * num_lesions)) < 1e-9 for value in values)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_reordering_the_images_does_not_change_the_result(data):
    predictions, ground_truths = data.draw(lesion_cases(distinct_scores=True))
    permutation = data.draw(st.permutations(range(len(ground_truths))))
    before = deeplesion_froc(predictions, ground_truths)
    after = deeplesion_froc([predictions[i] for i in permutation], [ground_truths[i] for i in permutation])
    assert before == after


@PROPERTY_SETTINGS
@given(data=st.data())
def test_a_zero_score_false_positive_never_raises_sensitivity(data):
    predictions, ground_truths = data.draw(lesion_cases())
    empty_images = [i for i, boxes in enumerate(ground_truths) if len(boxes) == 0]
    if not empty_images:
        predictions, ground_truths = predictions + [np.zeros((0, 5))], ground_truths + [np.zeros((0, 4))]
        empty_images = [len(ground_truths) - 1]
    image = data.draw(st.sampled_from(empty_images))
    rates = data.draw(fp_rates(len(ground_truths)))
    before = deeplesion_froc(predictions, ground_truths, fps=rates)
    extended = list(predictions)
    extended[image] = np.vstack([predictions[image], [[1.0, 1.0, 5.0, 5.0, 0.0]]])
    after = deeplesion_froc(extended, ground_truths, fps=rates)
    assert all(after[rate] <= before[rate] for rate in before)


@PROPERTY_SETTINGS
@given(case=lesion_cases(), overlap=st.sampled_from(["iou", "iobb"]))
def test_perfect_detections_find_every_lesion_at_every_rate(case, overlap):
    _, ground_truths = case
    perfect = [np.hstack([boxes, np.ones((len(boxes), 1))]) for boxes in ground_truths]
    froc = deeplesion_froc(perfect, ground_truths, fps=(0.0, 0.5, 1, 2, 4, 8, 16), overlap=overlap)
    assert set(froc.values()) == {1.0}


@PROPERTY_SETTINGS
@given(data=st.data())
def test_size_buckets_split_the_overall_hits_exactly(data):
    predictions, ground_truths = data.draw(lesion_cases())
    mm = st.sampled_from([2.0, 9.99, 10.0, 25.0, 30.0, 80.0])
    sizes = [np.array(data.draw(st.lists(mm, min_size=len(g), max_size=len(g)))) for g in ground_truths]
    rate = data.draw(st.sampled_from([0.5, 1.0, 4.0]))
    overall = deeplesion_froc(predictions, ground_truths, fps=[rate])[rate]
    by_size = sensitivity_by_size(predictions, ground_truths, sizes, fps=rate)
    flat = np.concatenate(sizes)
    counts = {
        "<10mm": np.sum(flat < 10),
        "10-30mm": np.sum((flat >= 10) & (flat < 30)),
        ">=30mm": np.sum(flat >= 30),
    }
    assert set(by_size) == set(counts)
    hits = sum(by_size[label] * count for label, count in counts.items() if count)
    assert abs(hits - overall * len(flat)) < 1e-9
    assert all(np.isnan(by_size[label]) for label, count in counts.items() if count == 0)
