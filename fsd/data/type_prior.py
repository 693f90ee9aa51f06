"""The lesion-type adjacency prior of the region-aware graph, from training annotations.

The model receives it when it is built (``build_detector(..., type_prior=...)``), so the model
code never reads data sets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from fsd.data.dl_info import KeySliceRecord


def type_prior_from_records(records: Sequence[KeySliceRecord], num_types: int = 8, smoothing: float = 1.0) -> torch.Tensor:
    """Row-stochastic (K, K) type adjacency prior from training annotations.

    Half co-occurrence (types found in the same patient), half body-region similarity (types
    whose normalised lesion locations lie close: exp(-distance between type mean locations / 0.2)),
    each row-normalised after adding ``smoothing`` so unseen pairs keep a small weight.
    """
    co_occurrence = np.zeros((num_types, num_types), dtype=np.float64)
    per_patient: dict[int, set[int]] = {}
    locations: list[list[tuple[float, float, float]]] = [[] for _ in range(num_types)]
    for record in records:
        for lesion in record.lesions:
            if 1 <= lesion.lesion_type <= num_types:
                per_patient.setdefault(record.patient, set()).add(lesion.lesion_type - 1)
                locations[lesion.lesion_type - 1].append(lesion.location)
    for types in per_patient.values():
        for a in types:
            for b in types:
                co_occurrence[a, b] += 1.0
    co_occurrence += smoothing
    co_occurrence /= co_occurrence.sum(axis=1, keepdims=True)
    means = np.array([np.mean(loc, axis=0) if loc else np.full(3, 0.5) for loc in locations])
    distance = np.linalg.norm(means[:, None, :] - means[None, :, :], axis=2)
    region = np.exp(-distance / 0.2)
    region /= region.sum(axis=1, keepdims=True)
    prior = 0.5 * co_occurrence + 0.5 * region
    return torch.as_tensor(prior / prior.sum(axis=1, keepdims=True), dtype=torch.float32)
