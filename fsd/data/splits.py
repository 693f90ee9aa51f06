"""Which key slices and lesions belong to a split and a task.

- binary task: every lesion, split by DeepLesion's official Train_Val_Test column;
- multi-type ("types") task: only typed lesions (DeepLesion types only its val and test lesions),
  re-split by patient with a seeded shuffle, so no patient crosses splits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import numpy as np

from fsd.data.dl_info import SPLIT_CODES, KeySliceRecord
from fsd.errors import DataError

Split = Literal["train", "val", "test"]


def check_split(split: str) -> None:
    if split not in SPLIT_CODES:
        raise DataError(f"split must be one of {', '.join(SPLIT_CODES)}, got {split!r}")


def filter_lesions(record: KeySliceRecord, task: str, drop_noisy: bool) -> KeySliceRecord:
    """Keep the lesions the task uses (typed ones for "types"; non-noisy when asked)."""
    kept = tuple(
        lesion
        for lesion in record.lesions
        if not (drop_noisy and lesion.noisy) and (task == "binary" or 1 <= lesion.lesion_type <= 8)
    )
    return dataclasses.replace(record, lesions=kept)


def patient_split(
    patients: Sequence[int], fractions: tuple[float, float, float], seed: int
) -> dict[int, Split]:
    """Assign patients to train/val/test by seeded shuffle; each split gets at least one patient
    when there are at least three patients and its fraction is positive."""
    order = sorted(set(patients))
    rng = np.random.default_rng(seed)
    rng.shuffle(order)
    count = len(order)
    n_val = int(round(fractions[1] * count))
    n_test = int(round(fractions[2] * count))
    if count >= 3:
        n_val = max(n_val, 1 if fractions[1] > 0 else 0)
        n_test = max(n_test, 1 if fractions[2] > 0 else 0)
    n_train = max(count - n_val - n_test, 0)
    assignment: dict[int, Split] = {}
    for position, patient in enumerate(order):
        if position < n_train:
            assignment[patient] = "train"
        elif position < n_train + n_val:
            assignment[patient] = "val"
        else:
            assignment[patient] = "test"
    return assignment


def task_records(records: Sequence[KeySliceRecord], task: str, drop_noisy: bool = True) -> list[KeySliceRecord]:
    """Every key slice with the lesions the task uses (typed ones for "types"), whatever its split;
    slices left without lesions are dropped."""
    if task not in ("binary", "types"):
        raise DataError(f"task must be 'binary' or 'types', got {task!r}")
    filtered = [filter_lesions(record, task, drop_noisy) for record in records]
    return [record for record in filtered if record.lesions]


def select_records(
    records: Sequence[KeySliceRecord],
    split: str,
    task: str,
    drop_noisy: bool = True,
    type_split: tuple[float, float, float] = (0.7, 0.15, 0.15),
    split_seed: int = 0,
) -> list[KeySliceRecord]:
    """The key slices (with the lesions the task uses) of one split; slices left without lesions
    are dropped."""
    check_split(split)
    filtered = task_records(records, task, drop_noisy)
    if task == "binary":
        code = SPLIT_CODES[split]
        return [record for record in filtered if record.split == code]
    assignment = patient_split([r.patient for r in filtered], type_split, split_seed)
    return [record for record in filtered if assignment[record.patient] == split]
