"""Seed-level t intervals: paired for arms trained with the same seeds, Welch's otherwise."""

from __future__ import annotations

import pytest
from scipy import stats

from fsd.cli.bench.seed_level import seed_level_difference


def test_paired_seeds_give_a_t_interval_over_the_per_seed_differences():
    result = seed_level_difference({0: 0.50, 1: 0.55, 2: 0.60}, {0: 0.40, 1: 0.50, 2: 0.45})
    assert result["kind"] == "paired t" and result["mean"] == pytest.approx(0.1)
    half = stats.t.ppf(0.975, 2) * 0.05 / 3**0.5  # differences .10 .05 .15: sd .05
    assert result["ci"] == pytest.approx((0.1 - half, 0.1 + half))


def test_other_seeds_give_welchs_interval_and_too_few_give_none():
    result = seed_level_difference({0: 0.5, 1: 0.6}, {0: 0.3, 1: 0.4, 2: 0.35, 3: 0.45, 4: 0.5})
    assert result["kind"] == "Welch t" and result["mean"] == pytest.approx(0.55 - 0.4)
    assert result["ci"][0] < result["mean"] < result["ci"][1]
    assert seed_level_difference({0: 0.5}, {0: 0.4, 1: 0.3}) is None
    assert seed_level_difference({0: 0.5, 1: float("nan")}, {0: 0.4, 1: 0.3}) is None
