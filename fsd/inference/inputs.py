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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fsd.data.deeplesion import png_context
from fsd.data.dl_info import KeySliceRecord, read_dl_info
from fsd.errors import DataError
from fsd.io.dicom import CTSlice, group_series
from fsd.preprocess import (
    Geometry,
    PreprocessConfig,
    context_slices_read,
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


def _depth_mm(ct_slice: CTSlice) -> float:
    """Position from head to feet in mm (minus the normal position, else minus SliceLocation);
    NaN if unknown. DeepLesion numbers slices in scan order, head to feet, and the model's
    context channels follow that order (channel 0 is the most superior), so DICOM contexts are
    stacked by depth, not by the LPS z coordinate, which grows towards the head."""
    for value in (ct_slice.normal_position_mm, ct_slice.slice_location):
        if value is not None:
            return -float(value)
    return math.nan


def _series_contexts(ordered: Sequence[CTSlice], config: PreprocessConfig) -> Iterator[tuple[np.ndarray, int]]:
    """Each slice's context stack and how many slices fed it, one slice at a time."""
    positions = np.array([_depth_mm(s) for s in ordered], dtype=np.float64)
    shapes = {s.hu.shape for s in ordered}
    usable = len(ordered) > 1 and len(shapes) == 1 and np.all(np.isfinite(positions)) and np.all(np.diff(positions) > 0)
    for index, ct_slice in enumerate(ordered):
        if usable:
            context = interpolate_context(positions, positions[index], lambda i: ordered[i].hu, config)
            yield context, context_slices_read(positions, positions[index], config)
        else:
            yield np.repeat(ct_slice.hu[None], config.num_slices, axis=0), 1


def slice_inputs_from_ct(slices: Sequence[CTSlice], config: PreprocessConfig, sources: Sequence[str] | None = None) -> list[SliceInput]:
    """One input per slice (per frame), grouped by series and ordered head to feet.

    ``sources`` optionally names where each slice came from (same order as ``slices``).
    """
    return list(iter_slice_inputs_from_ct(slices, config, sources))


def iter_slice_inputs_from_ct(
    slices: Sequence[CTSlice], config: PreprocessConfig, sources: Sequence[str] | None = None
) -> Iterator[SliceInput]:
    """:func:`slice_inputs_from_ct` one input at a time, so that a caller working through a long
    series in chunks never holds more than a chunk of inputs (and one context stack) at once."""
    names = {id(s): (sources[i] if sources else f"slice {i + 1}") for i, s in enumerate(slices)}
    for feet_to_head in group_series(slices).values():
        ordered = feet_to_head[::-1]
        for ct_slice, (context, used) in zip(ordered, _series_contexts(ordered, config)):
            image, geometry = preprocess_context(context, ct_slice.spacing_mm, config)
            yield SliceInput(
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


def _series_records(png: Path, indexes: dict[Path, dict[str, list[KeySliceRecord]]]) -> list[KeySliceRecord]:
    """The DL_info.csv records of the series a DeepLesion PNG belongs to, from the data set it sits
    in (each csv read once per call of :func:`slice_inputs_from_png`)."""
    for parent in png.parents:
        csv = parent / "DL_info.csv"
        if csv.is_file():
            if csv not in indexes:
                by_folder: dict[str, list[KeySliceRecord]] = {}
                for record in read_dl_info(csv):
                    by_folder.setdefault(record.folder, []).append(record)
                indexes[csv] = by_folder
            return indexes[csv].get(png.parent.name, [])
    return []


def slice_inputs_from_png(
    paths: Sequence[Path], config: PreprocessConfig, spacing_mm: tuple[float, float, float] | None = None
) -> list[SliceInput]:
    """Inputs for DeepLesion PNG key slices; neighbours are the PNGs beside them (``NNN.png``),
    assembled exactly as training assembles them (:func:`fsd.data.deeplesion.png_context`).

    The pixel spacing and slice interval come from ``spacing_mm`` (x, y, z) or else from the
    DL_info.csv record of the data set the PNG sits in (which also bounds the slice range).
    """
    inputs = []
    indexes: dict[Path, dict[str, list[KeySliceRecord]]] = {}
    for path in paths:
        path = Path(path)
        if not path.stem.isdigit():
            raise DataError(f"{path}: DeepLesion slices are named NNN.png")
        key = int(path.stem)
        series = [] if spacing_mm else _series_records(path, indexes)
        spacing = spacing_mm or (series[0].spacing_mm if series else None)
        if spacing is None:
            raise DataError(f"{path}: pixel spacing unknown (no DL_info.csv above it names its series); pass --spacing X,Y,Z")
        record = next((r for r in series if r.key_slice == key), None)
        context, used = png_context(path.parent, key, spacing[2], config, record.slice_range if record else None)
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
                context_slices=used,
            )
        )
    return inputs
