"""Balancing rare lesion types: typing-loss weights and repeat-factor sampling."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from fsd.data.dl_info import KeySliceRecord, LesionRecord
from fsd.data.type_balance import repeat_counts, type_counts, type_loss_weights
from fsd.engine.sampler import ResumableSampler


def _record(index: int, types: list[int]) -> KeySliceRecord:
    lesions = tuple(LesionRecord((0, 0, 1, 1), (0,) * 8, (1, 1), (0.5, 0.5, 0.5), t, False) for t in types)
    return KeySliceRecord(f"{index:06d}_01_01_001.png", index, 1, 1, 1, (1, 1), (1, 1, 1), (8, 8), (0, 1), "F", 50, 1, lesions)


#: 90 slices with a lung lesion (type 5), 10 with a bone lesion (type 1), one untyped lesion
RECORDS = [_record(i, [5]) for i in range(90)] + [_record(90 + i, [1]) for i in range(10)] + [_record(200, [-1])]


def test_weights_favour_rare_types_and_average_one_per_lesion():
    counts = type_counts(RECORDS, 8)
    assert counts.tolist() == [10, 0, 0, 0, 90, 0, 0, 0]
    weights = type_loss_weights(RECORDS, 8, power=0.5)
    assert float((weights * torch.as_tensor(counts)).sum() / counts.sum()) == pytest.approx(1.0)
    assert float(weights[0] / weights[4]) == pytest.approx(3.0)  # sqrt(90 / 10)
    assert float(weights[1]) == pytest.approx(float(weights.max()))  # an absent type gets the largest weight
    assert torch.equal(type_loss_weights(RECORDS, 8, power=0.0), torch.ones(8))


def test_repeat_factors_repeat_slices_of_rare_types_only():
    counts = repeat_counts(RECORDS, 8, threshold=0.4, seed=0)
    assert len(counts) == len(RECORDS) and min(counts) == 1
    assert set(counts[:90]) == {1}  # lung holds 90% of slices: above the threshold
    # bone holds 10%: r = sqrt(0.4 / 0.1) = 2 exactly
    assert counts[90:100] == [2] * 10
    assert repeat_counts(RECORDS, 8, threshold=0.0, seed=0) == [1] * len(RECORDS)
    fractional = repeat_counts(RECORDS, 8, threshold=0.3, seed=3)  # r = 1.73: 1 or 2, drawn once from the seed
    assert set(fractional[90:100]) <= {1, 2} and fractional == repeat_counts(RECORDS, 8, threshold=0.3, seed=3)


def test_a_sampler_with_repeats_shows_each_item_that_often_every_epoch():
    repeats = [1, 3, 1, 2]
    sampler = ResumableSampler(4, batch_size=2, seed=0, repeats=repeats)
    assert len(sampler) == 7 and sampler.batches_per_epoch == 4
    for epoch in range(3):
        sampler.set_epoch(epoch)
        assert Counter(list(sampler)) == {0: 1, 1: 3, 2: 1, 3: 2}
    sampler.set_epoch(1)
    full = list(sampler)
    sampler.set_epoch(1, start_batch=2)
    assert list(sampler) == full[4:]
    with pytest.raises(ValueError, match="at least once"):
        ResumableSampler(3, batch_size=2, seed=0, repeats=[1, 0, 1])
