"""Choosing a series' key slices, placing their lesions and measuring them as DeepLesion did.

A key slice gets a primary lesion type, a depth where that type's home tissue is in the series,
then 1-3 lesions. Key slices of one series lie far enough apart that no lesion of one shows on the
other. Each lesion is measured (RECIST) on its exact cross-section at the key slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fsd.data.synth.anatomy import Anatomy
from fsd.data.synth.body_position import body_position
from fsd.data.synth.geometry import polygon_of
from fsd.data.synth.lesions import BONE, LUNG, TYPE_WEIGHTS, Lesion, type_depth_range
from fsd.data.synth.patient import PatientPlan, SeriesPlan
from fsd.data.synth.placement import KeySliceCanvas, lesion_count, place_lesion, valid_centres
from fsd.data.synth.recist import Recist, measure
from fsd.data.synth.tissues import NOT_BODY
from fsd.data.synth.volume import grid_of, render_scene

_KEY_SEPARATION_MM = 40.0
_ATTEMPTS = 16


@dataclass(frozen=True)
class MeasuredLesion:
    """A placed lesion with its RECIST measurement and normalized location on its key slice."""

    lesion: Lesion
    recist: Recist
    location: tuple[float, float, float]  # normalized x, y (body box) and z (body position, anatomy-anchored)


@dataclass(frozen=True)
class KeySlice:
    """An annotated slice of a series: its 1-based index, display window and lesions."""

    series: SeriesPlan
    index: int
    window: tuple[int, int]
    lesions: tuple[MeasuredLesion, ...]


def _window(rng: np.random.Generator, type_id: int) -> tuple[int, int]:
    """A typical display window (low, high HU) for the primary lesion's region."""
    if type_id == LUNG:
        return (-1350, 150) if rng.random() < 0.8 else (-1500, 500)
    if type_id == BONE:
        return (-450, 1050)
    return (-175, 275) if rng.random() < 0.8 else (-160, 240)


def _sample_type(rng: np.random.Generator, types: list[int]) -> int:
    weights = np.array([TYPE_WEIGHTS[t] for t in types])
    return int(rng.choice(types, p=weights / weights.sum()))


def _types_in(patient: PatientPlan, series: SeriesPlan) -> list[int]:
    """Lesion types whose home region lies inside the series' z coverage."""
    result = []
    for type_id in TYPE_WEIGHTS:
        low, high = type_depth_range(patient.anatomy, type_id)
        if max(low, series.first_depth + 2.0) < min(high, series.last_depth - 2.0):
            result.append(type_id)
    return result


def _measure(lesion: Lesion, key_depth: float, series: SeriesPlan) -> Recist:
    """RECIST axes of the lesion's exact outline on the key slice, in pixels."""
    section = lesion.cross_section(key_depth)
    assert section is not None, "a lesion always crosses its own key slice"
    grid = grid_of(series)
    polygon = grid.to_px(polygon_of(section, 256))
    return measure(polygon)


def _location(lesion: Lesion, key: KeySliceCanvas, depth: float, anatomy: Anatomy) -> tuple[float, float, float]:
    """Lesion centre relative to the body's box on the key slice (x, y) and the key slice's body
    position (z, anchored to anatomy as DeepLesion's body-part regression is:
    :mod:`fsd.data.synth.body_position`), each in [0, 1]."""
    grid = key.canvas.grid
    body = ~key.canvas.region_mask(NOT_BODY)
    rows = np.flatnonzero(body.any(axis=1))
    cols = np.flatnonzero(body.any(axis=0))
    x = (float(grid.to_px(lesion.outline.cx)) - cols[0]) / max(cols[-1] - cols[0], 1)
    y = (float(grid.to_px(lesion.outline.cy)) - rows[0]) / max(rows[-1] - rows[0], 1)
    z = body_position(anatomy, depth)
    return tuple(float(np.clip(v, 0.0, 1.0)) for v in (x, y, z))  # type: ignore[return-value]


def _try_key_slice(
    rng: np.random.Generator,
    patient: PatientPlan,
    series: SeriesPlan,
    primary: int,
    placed: list[Lesion],
    key_depths: list[float],
    seed: int,
) -> tuple[int, list[Lesion], KeySliceCanvas] | None:
    """A key slice for a primary lesion type (index, lesions, its anatomy), or None if this try
    failed (no room at the drawn depth, too close to another key slice or lesion)."""
    low, high = type_depth_range(patient.anatomy, primary)
    low, high = max(low, series.first_depth + 2.0), min(high, series.last_depth - 2.0)
    if low >= high:
        return None
    index = series.index_of(rng.uniform(low, high))
    depth = series.depth_of(index)
    if any(abs(depth - other) < _KEY_SEPARATION_MM for other in key_depths):
        return None
    if any(abs(depth - lesion.depth) < lesion.half_height + 2.0 for lesion in placed):
        return None
    scene = render_scene(patient.anatomy, series, index, seed)
    grid = scene.canvas.grid
    key = KeySliceCanvas(scene.canvas, valid_centres(grid, 6, series.scanner.padding_hu is not None))
    first = place_lesion(rng, key, primary, depth, placed, key_depths)
    if first is None:
        return None
    lesions = [first]
    for _ in range(lesion_count(rng) - 1):
        type_id = primary if rng.random() < 0.5 else _sample_type(rng, list(TYPE_WEIGHTS))
        if not key.has_host(type_id):
            continue
        extra = place_lesion(rng, key, type_id, depth, placed + lesions, key_depths)
        if extra is not None:
            lesions.append(extra)
    return index, lesions, key


def plan_key_slices(
    rng: np.random.Generator, patient: PatientPlan, series: SeriesPlan, seed: int, required: bool = False
) -> list[KeySlice]:
    """One or two key slices of a series with their measured lesions.

    Empty when no lesion fits (rare), unless ``required``: then it keeps trying much longer, so
    every patient ends up with at least one annotated key slice.
    """
    types = _types_in(patient, series)
    if not types:
        return []
    wanted = 1 if rng.random() < 0.7 else 2
    placed: list[Lesion] = []
    key_depths: list[float] = []
    keys: list[KeySlice] = []
    for number in range(wanted):
        primary = _sample_type(rng, types)
        attempts = _ATTEMPTS * (8 if required and number == 0 else 1)
        for attempt in range(attempts):
            if attempt and attempt % 4 == 0:
                primary = _sample_type(rng, types)
            found = _try_key_slice(rng, patient, series, primary, placed, key_depths, seed)
            if found is None:
                continue
            index, lesions, canvas = found
            depth = series.depth_of(index)
            measured = tuple(
                MeasuredLesion(
                    lesion, _measure(lesion, depth, series), _location(lesion, canvas, depth, patient.anatomy)
                )
                for lesion in lesions
            )
            keys.append(KeySlice(series, index, _window(rng, lesions[0].type_id), measured))
            placed.extend(lesions)
            key_depths.append(depth)
            break
    return sorted(keys, key=lambda key: key.index)
