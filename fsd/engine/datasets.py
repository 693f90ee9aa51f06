"""``build_dataset``: the one way every caller (training, search, evaluation, benchmarks) opens a
data set: a split of the configured data, or records already chosen. When the config names a
validation set of its own patients (``data.val_data``), the val split is every key slice of it;
``held_out_dataset`` opens such a set (also ``fsd bench``'s test set)."""

from __future__ import annotations

from collections.abc import Sequence

from fsd.config import FsdConfig, HeldOutSet
from fsd.data.deeplesion import DeepLesionDataset
from fsd.data.dl_info import KeySliceRecord, read_dl_info
from fsd.data.splits import check_split, select_records, task_records
from fsd.errors import DataError


def split_records(config: FsdConfig, split: str) -> list[KeySliceRecord]:
    """The key slices of ``split`` with the lesions the config's task uses."""
    check_split(split)
    data = config.data
    csv = data.root / "DL_info.csv"
    if not csv.is_file():
        raise DataError(f"no DeepLesion data at {data.root} (missing {csv.name})")
    return select_records(read_dl_info(csv), split, config.task, data.drop_noisy, data.type_split, data.split_seed)


def build_dataset(
    config: FsdConfig, split: str | None = None, records: Sequence[KeySliceRecord] | None = None, name: str | None = None
) -> DeepLesionDataset:
    """The data set of ``split`` of ``config.data`` (or of the given ``records``), prepared with
    ``config.preprocess`` for ``config.task``; DataError when it holds no key slice."""
    if (split is None) == (records is None):
        raise ValueError("give exactly one of split or records")
    if split == "val" and config.data.val_data is not None:
        return held_out_dataset(config, config.data.val_data, name or "val")
    chosen = split_records(config, split) if split is not None else list(records or [])
    label = name or split or "records"
    dataset = DeepLesionDataset(
        config.data.root, chosen, task=config.task, preprocess=config.preprocess, cache=config.data.cache, name=label
    )
    if len(dataset) == 0:
        raise DataError(f"{config.data.root}: {label!r} of task {config.task!r} has no key slices with lesions")
    return dataset


def held_out_dataset(config: FsdConfig, held_out: HeldOutSet, name: str, cache: bool | None = None) -> DeepLesionDataset:
    """Every key slice of ``held_out`` (with the lesions the config's task uses), prepared like
    the configured data (``cache``: keep prepared items in memory; default ``data.cache``, worth
    it for a set scored again and again, not for a test set scored once); DataError when it is
    missing or holds no key slice."""
    csv = held_out.root / "DL_info.csv"
    if not csv.is_file():
        raise DataError(f"no DeepLesion data at {held_out.root} (missing {csv.name}) for the {name}")
    records = task_records(read_dl_info(csv), config.task, config.data.drop_noisy)
    keep = config.data.cache if cache is None else cache
    held_config = config.model_copy(update={"data": config.data.model_copy(update={"root": held_out.root, "val_data": None, "cache": keep})})
    return build_dataset(held_config, records=records, name=name)
