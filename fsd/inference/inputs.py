"""Model inputs for inference, from DICOM slices or DeepLesion PNGs, through :mod:`fsd.preprocess`.

DICOM: slices are grouped by series and ordered head to feet (DeepLesion's slice order, which
fixes the order of the context channels); each slice's context
channels are interpolated from its neighbours in the upload at the model's slice interval
(2 mm by default). Fallback when neighbours are absent (a single uploaded slice, or a series
whose positions are unknown, repeated or whose slices differ in size): the slice itself fills
every context channel, which is what the model sees at the ends of a volume too. Each result
reports how many distinct slices fed its context (``context_slices``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fsd.data.dl_info import read_dl_info
from fsd.errors import DataError
from fsd.io.dicom import CTSlice, group_series
from fsd.io.png import read_deeplesion_png
from fsd.preprocess import (
    Geometry,
    PreprocessConfig,
    context_offsets_mm,
    interpolate_context,
    preprocess_context,
)


@dataclass(frozen=True)
class SliceInput:
    """One key slice ready for the model, with what is needed to map detections back."""

    image: torch.Tensor
    geometry: Geometry
    spacing_mm: tuple[float, float]
    position_mm: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    sop_instance_uid: str | None
    series_instance_uid: str | None
    frame: int
    source: str
    context_slices: int


def _used_neighbours(positions: np.ndarray, key: float, config: PreprocessConfig) -> int:
    """How many distinct slices the interpolated context of ``key`` reads."""
    used: set[int] = set()
    for offset in context_offsets_mm(config):
        target = min(max(key + offset, positions[0]), positions[-1])
        upper = int(np.searchsorted(positions, target, side="left"))
        used.add(min(upper, len(positions) - 1))
        if upper > 0 and not math.isclose(positions[min(upper, len(positions) - 1)], target):
            used.add(upper - 1)
    return len(used)


def _depth_mm(ct_slice: CTSlice) -> float:
    """Position from head to feet in mm (minus the normal position, else minus SliceLocation);
    NaN if unknown. DeepLesion numbers slices in scan order, head to feet, and the model's
    context channels follow that order (channel 0 is the most superior), so DICOM contexts are
    stacked by depth, not by the LPS z coordinate, which grows towards the head."""
    for value in (ct_slice.normal_position_mm, ct_slice.slice_location):
        if value is not None:
            return -float(value)
    return math.nan


def _series_contexts(ordered: Sequence[CTSlice], config: PreprocessConfig) -> list[tuple[np.ndarray, int]]:
    positions = np.array([_depth_mm(s) for s in ordered], dtype=np.float64)
    shapes = {s.hu.shape for s in ordered}
    usable = len(ordered) > 1 and len(shapes) == 1 and np.all(np.isfinite(positions)) and np.all(np.diff(positions) > 0)
    contexts = []
    for index, ct_slice in enumerate(ordered):
        if usable:
            context = interpolate_context(positions, positions[index], lambda i: ordered[i].hu, config)
            contexts.append((context, _used_neighbours(positions, positions[index], config)))
        else:
            contexts.append((np.repeat(ct_slice.hu[None], config.num_slices, axis=0), 1))
    return contexts


def slice_inputs_from_ct(slices: Sequence[CTSlice], config: PreprocessConfig, sources: Sequence[str] | None = None) -> list[SliceInput]:
    """One input per slice (per frame), grouped by series and ordered head to feet.

    ``sources`` optionally names where each slice came from (same order as ``slices``).
    """
    names = {id(s): (sources[i] if sources else f"slice {i + 1}") for i, s in enumerate(slices)}
    inputs: list[SliceInput] = []
    for feet_to_head in group_series(slices).values():
        ordered = feet_to_head[::-1]
        for ct_slice, (context, used) in zip(ordered, _series_contexts(ordered, config)):
            image, geometry = preprocess_context(context, ct_slice.spacing_mm, config)
            inputs.append(
                SliceInput(
                    image=image,
                    geometry=geometry,
                    spacing_mm=ct_slice.spacing_mm,
                    position_mm=ct_slice.position_mm,
                    orientation=ct_slice.orientation,
                    sop_instance_uid=ct_slice.sop_instance_uid,
                    series_instance_uid=ct_slice.series_instance_uid,
                    frame=ct_slice.frame,
                    source=names[id(ct_slice)],
                    context_slices=used,
                )
            )
    return inputs


def _deeplesion_spacing(png: Path) -> tuple[float, float, float] | None:
    """(x, y, slice interval) of a DeepLesion PNG from the DL_info.csv above its Images_png folder."""
    for parent in png.parents:
        csv = parent / "DL_info.csv"
        if csv.is_file():
            folder = png.parent.name
            for record in read_dl_info(csv):
                if record.folder == folder:
                    return record.spacing_mm
            return None
    return None


def slice_inputs_from_png(
    paths: Sequence[Path], config: PreprocessConfig, spacing_mm: tuple[float, float, float] | None = None
) -> list[SliceInput]:
    """Inputs for DeepLesion PNG key slices; neighbours are the PNGs beside them (``NNN.png``).

    The pixel spacing and slice interval come from ``spacing_mm`` (x, y, z) or else from the
    DL_info.csv of the data set the PNG sits in.
    """
    inputs = []
    for path in paths:
        path = Path(path)
        spacing = spacing_mm or _deeplesion_spacing(path)
        if spacing is None:
            raise DataError(f"{path}: pixel spacing unknown (no DL_info.csv above it); pass --spacing X,Y,Z")
        try:
            key = int(path.stem)
        except ValueError:
            raise DataError(f"{path}: DeepLesion slices are named NNN.png") from None
        available = sorted(int(p.stem) for p in path.parent.glob("*.png") if p.stem.isdigit())
        positions = [index * spacing[2] for index in available]
        context = interpolate_context(
            positions, key * spacing[2], lambda i, folder=path.parent, names=available: read_deeplesion_png(folder / f"{names[i]:03d}.png"), config
        )
        image, geometry = preprocess_context(context, (spacing[1], spacing[0]), config)
        inputs.append(
            SliceInput(
                image=image,
                geometry=geometry,
                spacing_mm=(spacing[1], spacing[0]),
                position_mm=None,
                orientation=None,
                sop_instance_uid=None,
                series_instance_uid=None,
                frame=1,
                source=str(path),
                context_slices=_used_neighbours(np.asarray(positions), key * spacing[2], config),
            )
        )
    return inputs
