"""Rank correlation of two scorings of the same items: Kendall's tau-b, and its bootstrap interval
over the items (how well the supernet's scores rank architectures, :mod:`fsd.cli.bench.ranking`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fsd.cli.bench.percentile_interval import percentile_interval


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b: (concordant - discordant pairs) over the geometric mean of the pairs not
    tied in x and not tied in y; NaN when either has no untied pair."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"two equally long 1-d scorings are needed, got shapes {a.shape} and {b.shape}")
    upper = np.triu_indices(a.size, k=1)
    sign_a = np.sign(a[:, None] - a[None, :])[upper]
    sign_b = np.sign(b[:, None] - b[None, :])[upper]
    untied = np.count_nonzero(sign_a) * np.count_nonzero(sign_b)
    if untied == 0:
        return float("nan")
    return float(np.sum(sign_a * sign_b) / np.sqrt(untied))


def kendall_tau_interval(x: Sequence[float], y: Sequence[float], replicates: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of tau-b over bootstrap resamples of the items (with replacement:
    a drawn-twice item ties with itself and drops out of its own pair)."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    rng = np.random.default_rng(seed)
    values = np.empty(replicates)
    for index in range(replicates):
        chosen = rng.integers(0, a.size, a.size)
        values[index] = kendall_tau_b(a[chosen], b[chosen])
    return percentile_interval(values)
