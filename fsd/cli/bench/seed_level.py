"""Seed-level intervals: what three seeds say about a difference when only the seeds are resampled.

The bootstrap over test patients and seeds (:mod:`fsd.cli.bench.accuracy_report`) draws three
seeds with replacement, which understates how much another seed could move a result. Beside it,
each difference gets a t interval (95%) from the per-seed values: paired over the seeds both arms
have when they trained with the same seeds (an ablation of the searched genotype), Welch's
otherwise (the searched FSD against random architectures, one genotype per seed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import stats


def seed_level_difference(first: Mapping[int, float], second: Mapping[int, float]) -> dict[str, Any] | None:
    """t interval of mean(first) - mean(second) from per-seed values (seed -> value); None when
    either arm has fewer than two finite values."""
    a = {seed: v for seed, v in first.items() if np.isfinite(v)}
    b = {seed: v for seed, v in second.items() if np.isfinite(v)}
    if len(a) < 2 or len(b) < 2:
        return None
    if set(a) == set(b):
        differences = np.array([a[seed] - b[seed] for seed in sorted(a)])
        mean = float(differences.mean())
        half = float(stats.t.ppf(0.975, len(differences) - 1) * differences.std(ddof=1) / np.sqrt(len(differences)))
        return {"mean": mean, "ci": (mean - half, mean + half), "seeds": len(differences), "kind": "paired t"}
    x, y = np.array(list(a.values())), np.array(list(b.values()))
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    mean = float(x.mean() - y.mean())
    if vx + vy == 0:
        return {"mean": mean, "ci": (mean, mean), "seeds": len(x) + len(y), "kind": "Welch t"}
    dof = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    half = float(stats.t.ppf(0.975, dof) * np.sqrt(vx + vy))
    return {"mean": mean, "ci": (mean - half, mean + half), "seeds": len(x) + len(y), "kind": "Welch t"}
