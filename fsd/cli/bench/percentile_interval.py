"""The 95% percentile interval of bootstrap replicates, shared by the accuracy and typing reports."""

from __future__ import annotations

import numpy as np


def percentile_interval(values: np.ndarray) -> tuple[float, float]:
    """2.5th and 97.5th percentiles of the finite replicates (NaN, NaN when none is finite)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high)
