"""`DeepLesionDataset`: key slices of the official DeepLesion layout as detector inputs.

Reads ``root/DL_info.csv`` and ``root/Images_png/...``; each item is ``(image, target)`` with
``image`` a float32 (C, H, W) tensor built by :mod:`fsd.preprocess` and ``target`` a dict of
tensors: ``boxes`` (N, 4) model-grid x1, y1, x2, y2, ``labels`` (N,) int64 (1 for the binary task,
the lesion type 1..8 for the multi-type task), ``types`` (N,) the csv type (-1 when untyped),
``sizes_mm`` (N,) long diameters in mm, ``image_id`` (1,) the item index.

Key slices whose PNG is missing are logged and skipped when the data set is built; a PNG that
turns out broken when read is logged, remembered, and the next readable item is served instead.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from fsd.data.dl_info import KeySliceRecord, read_dl_info
from fsd.data.splits import select_records
from fsd.errors import DataError
from fsd.io.png import read_deeplesion_png
from fsd.preprocess import (
    Geometry,
    PreprocessConfig,
    context_offsets_mm,
    interpolate_context,
    preprocess_context,
)

logger = logging.getLogger(__name__)

Target = dict[str, torch.Tensor]


@dataclass(frozen=True)
class PreparedSlice:
    """A preprocessed key slice: model input, its geometry and the model-grid targets."""

    image: torch.Tensor
    geometry: Geometry
    target: Target


def load_png_context(root: Path, record: KeySliceRecord, config: PreprocessConfig) -> np.ndarray:
    """(C, H, W) HU slice context of a key slice, from the PNG slices present on disk."""
    interval = record.slice_interval_mm
    reach = float(np.abs(context_offsets_mm(config)).max())
    steps = int(math.ceil(reach / interval)) + 1
    low = max(record.slice_range[0], record.key_slice - steps)
    high = min(record.slice_range[1], record.key_slice + steps)
    indices = [
        index
        for index in range(low, high + 1)
        if index == record.key_slice or record.slice_path(root, index).is_file()
    ]
    positions = [index * interval for index in indices]
    return interpolate_context(
        positions,
        record.key_slice * interval,
        lambda i: read_deeplesion_png(record.slice_path(root, indices[i])),
        config,
    )


def prepare_record(root: Path, record: KeySliceRecord, config: PreprocessConfig, task: str, index: int) -> PreparedSlice:
    """Read and preprocess one key slice and move its boxes to the model grid."""
    context = load_png_context(root, record, config)
    image, geometry = preprocess_context(context, record.pixel_spacing_rc, config)
    boxes = geometry.clip_model_boxes(geometry.to_model(np.array([les.box for les in record.lesions])))
    labels = [1 if task == "binary" else les.lesion_type for les in record.lesions]
    long_mm = [les.diameters_px[0] * record.spacing_mm[0] for les in record.lesions]
    target: Target = {
        "boxes": torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.as_tensor(labels, dtype=torch.int64),
        "types": torch.as_tensor([les.lesion_type for les in record.lesions], dtype=torch.int64),
        "sizes_mm": torch.as_tensor(long_mm, dtype=torch.float32),
        "image_id": torch.tensor([index], dtype=torch.int64),
    }
    return PreparedSlice(image=image, geometry=geometry, target=target)


class DeepLesionDataset(Dataset):
    """Key slices of one split of a DeepLesion-layout data set (see the module docstring)."""

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        task: str = "binary",
        preprocess: PreprocessConfig | None = None,
        drop_noisy: bool = True,
        type_split: tuple[float, float, float] = (0.7, 0.15, 0.15),
        split_seed: int = 0,
        cache: bool = False,
        records: Sequence[KeySliceRecord] | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.task = task
        self.preprocess = preprocess or PreprocessConfig()
        self.cache_enabled = cache
        all_records = list(records) if records is not None else read_dl_info(self.root / "DL_info.csv")
        selected = select_records(all_records, split, task, drop_noisy, type_split, split_seed)
        self.records: list[KeySliceRecord] = []
        for record in selected:
            if record.slice_path(self.root, record.key_slice).is_file():
                self.records.append(record)
            else:
                logger.warning("skipping %s: key slice PNG is missing", record.file_name)
        self._broken: set[int] = set()
        self._cache: dict[int, PreparedSlice] = {}

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_classes(self) -> int:
        return 1 if self.task == "binary" else 8

    def prepared(self, index: int) -> PreparedSlice:
        """The preprocessed item ``index`` (skipping broken PNGs to the next readable item)."""
        if not self.records:
            raise DataError(f"{self.root}: no key slices in split {self.split!r} for task {self.task!r}")
        for attempt in range(len(self.records)):
            current = (index + attempt) % len(self.records)
            if current in self._broken:
                continue
            cached = self._cache.get(current)
            if cached is not None:
                return cached
            try:
                item = prepare_record(self.root, self.records[current], self.preprocess, self.task, current)
            except DataError as error:
                logger.warning("skipping %s: %s", self.records[current].file_name, error)
                self._broken.add(current)
                continue
            if self.cache_enabled:
                self._cache[current] = item
            return item
        raise DataError(f"{self.root}: every key slice of split {self.split!r} is unreadable")

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        item = self.prepared(index)
        return item.image, {key: value.clone() for key, value in item.target.items()}


def collate_detection(batch: Sequence[tuple[torch.Tensor, Target]]) -> tuple[list[torch.Tensor], list[Target]]:
    """Detection batches are lists: images differ in size."""
    images = [image for image, _ in batch]
    targets = [target for _, target in batch]
    return images, targets
