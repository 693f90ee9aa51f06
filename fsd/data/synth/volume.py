"""The slices of a series that exist on disk, and rendering one of them with its lesions.

Like DeepLesion, only the slices within about 30 mm of each key slice are kept; overlapping
ranges of two key slices of a series merge into one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fsd.data.synth.anatomy import Anatomy
from fsd.data.synth.geometry import Grid
from fsd.data.synth.lesions import HABITATS, Lesion, paint_lesion
from fsd.data.synth.patient import SeriesPlan, slice_seed
from fsd.data.synth.scanner import acquire
from fsd.data.synth.scene import Scene, render_anatomy

CONTEXT_MM = 30.0


def disk_ranges(series: SeriesPlan, key_indices: Sequence[int]) -> list[tuple[int, int]]:
    """Merged (first, last) 1-based slice ranges kept around the key slices."""
    reach = max(1, int(round(CONTEXT_MM / series.interval)))
    spans = sorted((max(1, k - reach), min(series.slices, k + reach)) for k in key_indices)
    merged: list[tuple[int, int]] = []
    for first, last in spans:
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def range_of(ranges: Sequence[tuple[int, int]], index: int) -> tuple[int, int]:
    """The range holding a slice index."""
    for first, last in ranges:
        if first <= index <= last:
            return first, last
    raise ValueError(f"slice {index} is not in any range {list(ranges)}")


def grid_of(series: SeriesPlan) -> Grid:
    return Grid(series.size, series.spacing)


def render_scene(anatomy: Anatomy, series: SeriesPlan, index: int, seed: int) -> Scene:
    """Noise-free anatomy of one slice (deterministic for the slice)."""
    rng = np.random.default_rng(slice_seed(seed, series.patient, series.study, series.series, index, 0))
    return render_anatomy(anatomy, series.scene, grid_of(series), series.depth_of(index), rng)


def render_slice(
    anatomy: Anatomy, series: SeriesPlan, index: int, lesions: Sequence[Lesion], seed: int
) -> np.ndarray:
    """The final int16 HU slice: anatomy, lesions, then scanner blur, noise and padding."""
    scene = render_scene(anatomy, series, index, seed)
    depth = series.depth_of(index)
    for lesion in lesions:
        paint_lesion(scene.canvas, lesion, depth, HABITATS[lesion.type_id].clip)
    rng = np.random.default_rng(slice_seed(seed, series.patient, series.study, series.series, index, 1))
    return acquire(scene.canvas.hu, grid_of(series), series.scanner, rng)
