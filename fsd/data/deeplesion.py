"""`DeepLesionDataset`: key slices of the official DeepLesion layout as detector inputs.

Reads ``root/Images_png/...`` for the given DL_info records; each item is ``(image, target)`` with
``image`` a float32 (C, H, W) tensor built by :mod:`fsd.preprocess` and ``target`` a dict of
tensors: ``boxes`` (N, 4) model-grid x1, y1, x2, y2, ``labels`` (N,) int64 (1 for the binary task,
the lesion type 1..8 for the multi-type task), ``types`` (N,) the csv type (-1 when untyped),
``sizes_mm`` (N,) long diameters in mm, ``image_id`` (1,) the item index, ``slice_z`` (1,) the key
slice's position along the body (the mean normalised z of its lesions, 0 head end .. 1 feet end).

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

from fsd.constants import num_classes
from fsd.data.dl_info import KeySliceRecord
from fsd.errors import DataError
from fsd.io.png import read_deeplesion_png
from fsd.preprocess import (
    Geometry,
    PreprocessConfig,
    context_offsets_mm,
    context_slices_read,
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


def png_context(
    folder: Path,
    key_slice: int,
    interval_mm: float,
    config: PreprocessConfig,
    slice_range: tuple[int, int] | None = None,
) -> tuple[np.ndarray, int]:
    """(C, H, W) HU slice context of the key slice ``folder/{key_slice:03d}.png``, from the PNG
    slices on disk within the context's reach (and within ``slice_range`` when known), and how
    many distinct slices it reads. Slices sit at ``index * interval_mm`` along the scan axis."""
    reach = float(np.abs(context_offsets_mm(config)).max())
    steps = int(math.ceil(reach / interval_mm)) + 1
    low, high = key_slice - steps, key_slice + steps
    if slice_range is not None:
        low, high = max(slice_range[0], low), min(slice_range[1], high)
    indices = [index for index in range(low, high + 1) if index == key_slice or (folder / f"{index:03d}.png").is_file()]
    positions = [index * interval_mm for index in indices]
    key_mm = key_slice * interval_mm
    context = interpolate_context(positions, key_mm, lambda i: read_deeplesion_png(folder / f"{indices[i]:03d}.png"), config)
    return context, context_slices_read(positions, key_mm, config)


def prepare_record(root: Path, record: KeySliceRecord, config: PreprocessConfig, task: str, index: int) -> PreparedSlice:
    """Read and preprocess one key slice and move its boxes to the model grid."""
    folder = record.slice_path(root, record.key_slice).parent
    context, _ = png_context(folder, record.key_slice, record.slice_interval_mm, config, record.slice_range)
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
        "slice_z": torch.tensor([float(np.mean([les.location[2] for les in record.lesions]))], dtype=torch.float32),
    }
    return PreparedSlice(image=image, geometry=geometry, target=target)


class DeepLesionDataset(Dataset):
    """Given key slices of a DeepLesion-layout data set as detector inputs (see the module
    docstring); the records are used as they are (``fsd.engine.datasets.build_dataset`` selects
    a split's). ``name`` says which records these are in messages and progress bars."""

    def __init__(
        self,
        root: str | Path,
        records: Sequence[KeySliceRecord],
        task: str = "binary",
        preprocess: PreprocessConfig | None = None,
        cache: bool = False,
        name: str = "data",
    ) -> None:
        self.root = Path(root)
        self.name = name
        self.task = task
        self.preprocess = preprocess or PreprocessConfig()
        self.cache_enabled = cache
        self.records: list[KeySliceRecord] = []
        for record in records:
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
        return num_classes(self.task)

    def prepared(self, index: int) -> PreparedSlice:
        """The preprocessed item ``index`` (skipping broken PNGs to the next readable item)."""
        if not self.records:
            raise DataError(f"{self.root}: no key slices in {self.name!r} for task {self.task!r}")
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
        raise DataError(f"{self.root}: every key slice of {self.name!r} is unreadable")

    def preload(self) -> None:
        """Prepare and cache every item now (with ``cache``), so that data-loader worker processes
        start with the whole cache instead of refilling their own copy every epoch."""
        if self.cache_enabled:
            for index in range(len(self.records)):
                self.prepared(index)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        item = self.prepared(index)
        return item.image, {key: value.clone() for key, value in item.target.items()}


def collate_detection(batch: Sequence[tuple[torch.Tensor, Target]]) -> tuple[list[torch.Tensor], list[Target]]:
    """Detection batches are lists: images differ in size."""
    images = [image for image, _ in batch]
    targets = [target for _, target in batch]
    return images, targets
