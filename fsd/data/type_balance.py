"""Balancing the lesion types in training, from the training annotations.

DeepLesion's types are very unbalanced (lung and abdomen lesions outnumber bone lesions almost
ten to one), and a plain classifier learns to never answer the rare types. Two remedies, both
computed here from the training records and handed to the model and the sampler when a run is
built (the model code never reads data sets):

- :func:`type_loss_weights`: per-type weights of the typing loss, ``n_t ** -power``
  normalised so that the mean weight per training lesion is 1 (``power`` 0.5 is the square-root
  balance, 1 inverse frequency);
- :func:`repeat_counts`: repeat-factor sampling as LVIS trains its rare classes: a key slice is
  repeated ``r = max(1, sqrt(threshold / f))`` times per epoch, ``f`` the fraction of training
  key slices holding its rarest type; the fractional part is drawn once from ``seed``, so every
  epoch has the same length (the learning-rate schedule and resume rely on it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from fsd.data.dl_info import KeySliceRecord


def type_counts(records: Sequence[KeySliceRecord], num_types: int) -> np.ndarray:
    """(K,) training lesions of each type 1..K (untyped lesions left out)."""
    counts = np.zeros(num_types, dtype=np.int64)
    for record in records:
        for lesion in record.lesions:
            if 1 <= lesion.lesion_type <= num_types:
                counts[lesion.lesion_type - 1] += 1
    return counts


def type_loss_weights(records: Sequence[KeySliceRecord], num_types: int, power: float) -> torch.Tensor:
    """(K,) typing-loss weights ``n_t ** -power`` with mean 1 per training lesion; a type absent
    from training gets the largest present weight."""
    counts = type_counts(records, num_types).astype(np.float64)
    if counts.sum() == 0 or power == 0:
        return torch.ones(num_types)
    present = counts > 0
    weights = np.zeros(num_types)
    weights[present] = counts[present] ** -power
    weights /= (weights * counts).sum() / counts.sum()
    weights[~present] = weights[present].max()
    return torch.as_tensor(weights, dtype=torch.float32)


def repeat_counts(records: Sequence[KeySliceRecord], num_types: int, threshold: float, seed: int) -> list[int]:
    """How often each key slice appears in an epoch (see the module docstring); all ones when
    ``threshold`` is 0."""
    if threshold <= 0 or not records:
        return [1] * len(records)
    holding = np.zeros(num_types)
    for record in records:
        for type_id in {lesion.lesion_type for lesion in record.lesions if 1 <= lesion.lesion_type <= num_types}:
            holding[type_id - 1] += 1
    fraction = holding / len(records)
    rng = np.random.default_rng(seed)
    counts = []
    for record in records:
        types = [lesion.lesion_type for lesion in record.lesions if 1 <= lesion.lesion_type <= num_types]
        factor = max([1.0] + [math.sqrt(threshold / fraction[t - 1]) for t in types])
        whole = int(math.floor(factor))
        counts.append(whole + int(rng.random() < factor - whole))
    return counts
