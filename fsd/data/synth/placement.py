"""Putting lesions on a key slice: inside their host tissue, away from each other, in the image.

A lesion's centre is drawn among the pixels whose distance to the edge of the host tissue is at
least the required part of its radius; if none qualifies the lesion is shrunk and tried again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage

from fsd.data.synth.canvas import Canvas
from fsd.data.synth.geometry import Grid
from fsd.data.synth.lesions import HABITATS, Lesion, sample_appearance, sample_diameter, sample_outline

NOISY_FRACTION = 0.01
_MIN_DIAMETER_PX = 4.0
_GAP_MM = 3.0


@dataclass
class KeySliceCanvas:
    """A key slice's noise-free anatomy plus cached distance maps (mm) of each lesion type's host."""

    canvas: Canvas
    valid: np.ndarray  # pixels where a lesion centre may go at all (inside the image and field of view)
    _distances: dict[int, np.ndarray] = field(default_factory=dict)

    def host_distance(self, type_id: int) -> np.ndarray:
        if type_id not in self._distances:
            host = self.canvas.region_mask(HABITATS[type_id].hosts)
            self._distances[type_id] = ndimage.distance_transform_edt(host) * self.canvas.grid.spacing
        return self._distances[type_id]

    def has_host(self, type_id: int) -> bool:
        return bool((self.host_distance(type_id)[self.valid] > 0).any())


def valid_centres(grid: Grid, margin_px: int, fov_limited: bool) -> np.ndarray:
    """Pixels at least ``margin_px`` from the image edge (and inside the reconstruction circle)."""
    valid = np.zeros((grid.size, grid.size), dtype=bool)
    valid[margin_px : grid.size - margin_px, margin_px : grid.size - margin_px] = True
    if fov_limited:
        coordinates = grid.to_mm(np.arange(grid.size, dtype=np.float64))
        radius = 0.5 * grid.size * grid.spacing - margin_px * grid.spacing
        valid &= coordinates[None, :] ** 2 + coordinates[:, None] ** 2 < radius * radius
    return valid


def _clear_of(
    lesions: list[Lesion], depth: float, half_height: float, radius: float, grid: Grid
) -> np.ndarray:
    """Pixels where a new lesion would not touch any existing lesion (3D, with a small gap)."""
    clear = np.ones((grid.size, grid.size), dtype=bool)
    coordinates = grid.to_mm(np.arange(grid.size, dtype=np.float64))
    for other in lesions:
        if abs(other.depth - depth) >= other.half_height + half_height + _GAP_MM:
            continue
        reach = other.max_radius + radius + _GAP_MM
        dx = coordinates[None, :] - other.outline.cx
        dy = coordinates[:, None] - other.outline.cy
        clear &= dx * dx + dy * dy >= reach * reach
    return clear


def place_lesion(
    rng: np.random.Generator,
    key: KeySliceCanvas,
    type_id: int,
    depth: float,
    existing: list[Lesion],
    forbidden_depths: list[float],
) -> Lesion | None:
    """One lesion of ``type_id`` centred near ``depth``, or None if it cannot fit."""
    grid = key.canvas.grid
    habitat = HABITATS[type_id]
    distance = key.host_distance(type_id)
    min_mm = _MIN_DIAMETER_PX * grid.spacing
    diameter = sample_diameter(rng, type_id, min_mm)
    outline = sample_outline(rng, type_id, diameter)
    noisy = bool(rng.random() < NOISY_FRACTION)
    while diameter >= min_mm:
        radius = max(outline.a, outline.b) * outline.wobble.max_factor()
        half_height = 0.5 * diameter * rng.uniform(0.7, 1.1)
        centre_depth = depth + (rng.uniform(-0.2, 0.2) * half_height if existing else 0.0)
        if all(abs(centre_depth - other) > half_height + 1.0 for other in forbidden_depths):
            needed = habitat.fit * radius + 0.6 * grid.spacing
            candidates = (
                key.valid
                & (distance >= needed)
                & _clear_of(existing, centre_depth, half_height, radius, grid)
            )
            choices = np.flatnonzero(candidates)
            if choices.size:
                flat = int(choices[rng.integers(choices.size)])
                row, col = divmod(flat, grid.size)
                x, y = float(grid.to_mm(col)), float(grid.to_mm(row))
                footprint = key.canvas.mask(replace(outline, cx=x, cy=y))
                footprint[row, col] = True
                host_hu = float(np.median(key.canvas.hu[footprint]))
                return Lesion(
                    type_id=type_id,
                    outline=replace(outline, cx=x, cy=y),
                    depth=centre_depth,
                    half_height=half_height,
                    appearance=sample_appearance(rng, type_id, host_hu, noisy),
                    noisy=noisy,
                )
        diameter *= 0.8
        outline = outline.scaled(0.8)
    return None


def lesion_count(rng: np.random.Generator) -> int:
    """Lesions on one key slice: 1 to 3, mostly 1."""
    return int(rng.choice([1, 2, 3], p=[0.62, 0.27, 0.11]))
