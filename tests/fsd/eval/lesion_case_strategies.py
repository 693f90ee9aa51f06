"""Hypothesis strategies for small DeepLesion-style evaluation cases.

A case is (predictions, ground_truths): per image an (N, 5) detection array and an (M, 4) lesion
array. Lesions sit on a small grid so they often overlap, and some are near-copies of another
lesion so one detection can hit two at once; detections are mostly jittered lesion boxes (so hits,
misses and exact-threshold overlaps all happen), sometimes random boxes; images may have no
lesion or no detection. Scores come from a few values (ties) or are continuous.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st


@st.composite
def lesion_boxes(draw: st.DrawFn, count: int) -> np.ndarray:
    boxes: list[list[float]] = []
    for _ in range(count):
        if boxes and draw(st.booleans()):
            base = draw(st.sampled_from(boxes))
            x1, y1 = base[0] + draw(st.integers(-1, 1)), base[1] + draw(st.integers(-1, 1))
            x2 = max(x1 + 1, base[2] + draw(st.integers(-1, 1)))
            y2 = max(y1 + 1, base[3] + draw(st.integers(-1, 1)))
        else:
            x1, y1 = draw(st.integers(0, 12)), draw(st.integers(0, 12))
            x2, y2 = x1 + draw(st.integers(1, 6)), y1 + draw(st.integers(1, 6))
        boxes.append([float(x1), float(y1), float(x2), float(y2)])
    return np.array(boxes, dtype=float).reshape(-1, 4)


@st.composite
def detection_box(draw: st.DrawFn, lesions: np.ndarray) -> list[float]:
    if len(lesions) and draw(st.integers(0, 3)) > 0:
        base = lesions[draw(st.integers(0, len(lesions) - 1))]
        jitter = [draw(st.sampled_from([-2.0, -1.0, -0.5, 0.0, 0.0, 0.0, 0.5, 1.0, 2.0])) for _ in range(4)]
        x1, y1 = base[0] + jitter[0], base[1] + jitter[1]
        return [x1, y1, max(x1, base[2] + jitter[2]), max(y1, base[3] + jitter[3])]
    x1, y1 = float(draw(st.integers(0, 14))), float(draw(st.integers(0, 14)))
    return [x1, y1, x1 + draw(st.integers(0, 6)), y1 + draw(st.integers(0, 6))]


scores = st.one_of(
    st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9]),
    st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
)


@st.composite
def lesion_cases(
    draw: st.DrawFn, max_images: int = 6, distinct_scores: bool = False
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A case with at least one lesion in total."""
    num_images = draw(st.integers(1, max_images))
    ground_truths = [draw(lesion_boxes(draw(st.integers(0, 3)))) for _ in range(num_images)]
    if sum(len(boxes) for boxes in ground_truths) == 0:
        ground_truths[draw(st.integers(0, num_images - 1))] = draw(lesion_boxes(1))
    rows = [
        [draw(detection_box(lesions)) + [draw(scores)] for _ in range(draw(st.integers(0, 5)))]
        for lesions in ground_truths
    ]
    if distinct_scores:
        total = sum(len(image_rows) for image_rows in rows)
        order = iter(draw(st.permutations(range(total))))
        for image_rows in rows:
            for row in image_rows:
                row[4] = (next(order) + 1) / (total + 1)
    predictions = [np.array(image_rows, dtype=float).reshape(-1, 5) for image_rows in rows]
    return predictions, ground_truths


@st.composite
def fp_rates(draw: st.DrawFn, num_images: int) -> list[float]:
    """Usual reporting rates, exact multiples k / N (where curve points repeat) and random rates."""
    multiples = [k / num_images for k in draw(st.lists(st.integers(0, 40), max_size=6))]
    random_rates = draw(st.lists(st.floats(min_value=0.0, max_value=20.0), max_size=4))
    return [0.0, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, *multiples, *random_rates]
