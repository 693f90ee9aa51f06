"""The eight DeepLesion lesion types: where each lives, how big it is, what it looks like.

A lesion is a compact 3D blob: an irregular outline (radius modulated by a few harmonics, spikes
for spiculated lung nodules) whose cross-section shrinks like an ellipsoid away from its centre
depth, so it shows on a few neighbouring slices only. Its density pattern (solid, cystic, necrotic
centre, enhancing rim, lytic or sclerotic bone) contrasts with its host tissue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from fsd.data.synth.anatomy import Anatomy
from fsd.data.synth.canvas import Canvas
from fsd.data.synth.geometry import Blob, Wobble, polygon_of
from fsd.data.synth.recist import measure
from fsd.data.synth.tissues import Region

BONE, ABDOMEN, MEDIASTINUM, LIVER, LUNG, KIDNEY, SOFT_TISSUE, PELVIS = range(1, 9)

#: Relative frequency of each type, roughly DeepLesion's typed lesions.
TYPE_WEIGHTS: dict[int, float] = {
    BONE: 0.06,
    ABDOMEN: 0.2,
    MEDIASTINUM: 0.16,
    LIVER: 0.13,
    LUNG: 0.22,
    KIDNEY: 0.06,
    SOFT_TISSUE: 0.08,
    PELVIS: 0.09,
}

#: Median long diameter (mm) of the log-normal size distribution and its spread.
MEDIAN_DIAMETER_MM = 19.0
DIAMETER_SIGMA = 0.6
MIN_DIAMETER_MM = 5.0
MAX_DIAMETER_MM = 100.0
_TYPE_SIZE = {
    BONE: 1.1,
    ABDOMEN: 1.1,
    MEDIASTINUM: 1.0,
    LIVER: 1.2,
    LUNG: 0.75,
    KIDNEY: 1.1,
    SOFT_TISSUE: 1.0,
    PELVIS: 1.15,
}


@dataclass(frozen=True)
class Habitat:
    """Where a lesion type may sit on its key slice."""

    hosts: frozenset[int]  # tissue labels that may hold its centre
    fit: float  # fraction of its radius that must lie inside the host
    clip: frozenset[int] | None  # labels it is drawn on (None: anything), so it stays in its organ


HABITATS: dict[int, Habitat] = {
    BONE: Habitat(
        frozenset({Region.MARROW, Region.CORTICAL_BONE}),
        1.0,
        frozenset({Region.MARROW, Region.CORTICAL_BONE}),
    ),
    ABDOMEN: Habitat(frozenset({Region.ABDOMEN_FAT}), 0.85, None),
    MEDIASTINUM: Habitat(frozenset({Region.MEDIASTINUM}), 0.8, None),
    LIVER: Habitat(frozenset({Region.LIVER}), 1.0, frozenset({Region.LIVER})),
    LUNG: Habitat(frozenset({Region.LUNG}), 1.0, frozenset({Region.LUNG})),
    KIDNEY: Habitat(frozenset({Region.KIDNEY}), 0.75, None),
    SOFT_TISSUE: Habitat(frozenset({Region.SUBCUT_FAT, Region.MUSCLE, Region.BREAST}), 0.9, None),
    PELVIS: Habitat(frozenset({Region.PELVIC_FAT}), 0.85, None),
}


def type_depth_range(anatomy: Anatomy, type_id: int) -> tuple[float, float]:
    """Depths (mm) where a key slice may show a lesion of this type."""
    lm = anatomy.landmarks
    ranges = {
        BONE: (lm["spine"][0] + 20.0, lm["ischium"][1] - 10.0),
        ABDOMEN: (lm["liver"][0] + 60.0, lm["pelvis"][0] + 10.0),
        MEDIASTINUM: (lm["lung"][0] + 25.0, lm["heart"][1] - 10.0),
        LIVER: (lm["liver"][0] + 25.0, lm["liver"][1] - 25.0),
        LUNG: (lm["lung"][0] + 25.0, lm["lung"][1] - 15.0),
        KIDNEY: (
            min(lm["right_kidney"][0], lm["left_kidney"][0]) + 15.0,
            max(lm["right_kidney"][1], lm["left_kidney"][1]) - 15.0,
        ),
        SOFT_TISSUE: (lm["lung"][0], lm["ischium"][1] - 10.0),
        PELVIS: (lm["pelvis"][0] + 15.0, lm["ischium"][1] - 10.0),
    }
    return ranges[type_id]


@dataclass(frozen=True)
class Appearance:
    """Density pattern of a lesion: base HU plus optional centre/rim/calcification changes."""

    hu: float
    texture_hu: float
    centre_delta: float = 0.0  # added where relative radius < 0.5 (necrosis, cyst component)
    rim_delta: float = 0.0  # added where relative radius > 0.75 (enhancing rim)
    calcified: bool = False


@dataclass(frozen=True)
class Lesion:
    """A lesion in one series: its outline at its widest, centre depth and half height (mm)."""

    type_id: int
    outline: Blob
    depth: float
    half_height: float
    appearance: Appearance
    noisy: bool

    def cross_section(self, depth: float) -> Blob | None:
        offset = (depth - self.depth) / self.half_height
        if abs(offset) >= 1.0:
            return None
        return self.outline.scaled(math.sqrt(1.0 - offset * offset))

    @property
    def max_radius(self) -> float:
        return max(self.outline.a, self.outline.b) * self.outline.wobble.max_factor()


def sample_diameter(rng: np.random.Generator, type_id: int, min_mm: float) -> float:
    """Long diameter (mm): log-normal, skewed small like DeepLesion, clipped to 5..100 mm."""
    value = math.exp(rng.normal(math.log(MEDIAN_DIAMETER_MM * _TYPE_SIZE[type_id]), DIAMETER_SIGMA))
    return float(np.clip(value, max(MIN_DIAMETER_MM, min_mm), MAX_DIAMETER_MM))


def sample_outline(rng: np.random.Generator, type_id: int, diameter_mm: float) -> Blob:
    """An irregular outline centred at (0, 0) whose RECIST long axis is ``diameter_mm``."""
    aspect = (
        rng.uniform(0.55, 1.0)
        if type_id in (MEDIASTINUM, ABDOMEN, PELVIS, SOFT_TISSUE)
        else rng.uniform(0.7, 1.0)
    )
    harmonics = tuple(
        (k, rng.uniform(0.0, 0.09) / (k - 1), rng.uniform(0, 2 * math.pi)) for k in (2, 3, 4, 5)
    )
    spikes: tuple[tuple[float, float], ...] = ()
    if type_id == LUNG and rng.random() < 0.3:
        spikes = tuple(
            (rng.uniform(-math.pi, math.pi), rng.uniform(0.15, 0.35)) for _ in range(int(rng.integers(5, 10)))
        )
    unit = Blob(0.0, 0.0, 1.0, aspect, angle=rng.uniform(0, math.pi), wobble=Wobble(harmonics, spikes))
    long_axis = measure(polygon_of(unit, 180)).long_px
    return unit.scaled(diameter_mm / long_axis)


MIN_CONTRAST_HU = 18.0


def sample_appearance(rng: np.random.Generator, type_id: int, host_hu: float, noisy: bool) -> Appearance:
    """HU pattern for a lesion in tissue of ``host_hu``; a noisy lesion barely differs from it,
    any other lesion differs by at least MIN_CONTRAST_HU."""
    if noisy:
        return Appearance(host_hu + rng.uniform(-6.0, 6.0), 4.0)
    look = _typical_appearance(rng, type_id, host_hu)
    difference = look.hu - host_hu
    if abs(difference) < MIN_CONTRAST_HU:
        return replace(look, hu=host_hu + math.copysign(MIN_CONTRAST_HU, difference or 1.0))
    return look


def _typical_appearance(rng: np.random.Generator, type_id: int, host_hu: float) -> Appearance:
    subtle = rng.random() < 0.12
    if type_id == LUNG:
        if rng.random() < 0.1:
            return Appearance(rng.uniform(-600.0, -420.0), 30.0)
        return Appearance(rng.uniform(-10.0, 60.0), 12.0, calcified=rng.random() < 0.05)
    if type_id == LIVER:
        kind = rng.random()
        if kind < 0.25:
            return Appearance(rng.uniform(0.0, 15.0), 3.0)
        if kind < 0.85:
            delta = rng.uniform(18.0, 28.0) if subtle else rng.uniform(35.0, 80.0)
            return Appearance(
                host_hu - delta,
                10.0,
                centre_delta=-rng.uniform(0, 25.0),
                rim_delta=rng.uniform(0, 25.0) if rng.random() < 0.3 else 0.0,
            )
        return Appearance(host_hu + (rng.uniform(20.0, 28.0) if subtle else rng.uniform(30.0, 60.0)), 12.0)
    if type_id == KIDNEY:
        if rng.random() < 0.55:
            return Appearance(rng.uniform(0.0, 15.0), 3.0)
        delta = rng.uniform(50.0, 100.0) if host_hu > 100 else -rng.uniform(30.0, 50.0)
        return Appearance(host_hu - delta, 15.0, centre_delta=-rng.uniform(0, 20.0))
    if type_id == BONE:
        if rng.random() < 0.6:
            return Appearance(rng.uniform(20.0, 90.0), 15.0)
        return Appearance(rng.uniform(650.0, 1000.0), 60.0)
    if type_id == SOFT_TISSUE and host_hu > 0:
        delta = rng.uniform(20.0, 28.0) if subtle else rng.uniform(35.0, 70.0)
        return Appearance(host_hu + (delta if rng.random() < 0.5 else -delta), 10.0)
    # nodes and masses in fat: mediastinum, abdomen, pelvis, subcutaneous
    if rng.random() < 0.12:
        return Appearance(rng.uniform(5.0, 20.0), 4.0)
    necrotic = -rng.uniform(20.0, 35.0) if rng.random() < 0.18 else 0.0
    return Appearance(rng.uniform(30.0, 70.0), 10.0, centre_delta=necrotic)


def paint_lesion(canvas: Canvas, lesion: Lesion, depth: float, clip: frozenset[int] | None) -> None:
    """Draw the lesion's cross-section at ``depth`` (nothing when the slice misses it)."""
    section = lesion.cross_section(depth)
    if section is None:
        return
    look = lesion.appearance

    def density(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        q = section.relative_radius(x, y)
        values = np.full(q.shape, look.hu, dtype=np.float32)
        if look.centre_delta:
            values = values + look.centre_delta * (q < 0.5)
        if look.rim_delta:
            values = values + look.rim_delta * (q > 0.75)
        if look.calcified:
            values = np.where(q < 0.2, look.hu + 400.0, values)
        return values

    canvas.paint(section, density, None, texture_hu=look.texture_hu, only=clip)
