"""3D tubular structures of a patient: vessel trees and bowel loops, as polylines.

Points are stored in "cavity coordinates" (u, v, depth): u and v are fractions of the body
cavity's half width and half depth at that level (u > 0 patient left, v > 0 posterior), and depth
is mm from the thoracic inlet towards the feet. A tube therefore follows the body's shape along z,
and a slice cuts it as a small disc or streak that moves smoothly from slice to slice: round on
one slice like a nodule, but tubular across slices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class Segment:
    """A straight piece of tube between two points (u, v, depth) with a radius in mm."""

    start: tuple[float, float, float]
    end: tuple[float, float, float]
    radius: float


@dataclass(frozen=True)
class Tube:
    """A tube made of consecutive segments, with what it is filled with."""

    segments: tuple[Segment, ...]
    kind: str  # "lung_vessel", "liver_vessel", "small_bowel", "colon"
    contents: str = "blood"  # "blood", "fluid", "gas", "contrast", "stool"
    #: bowel only: gas fills the lumen above centre + gas_level * radius (1 all gas, -1 no gas)
    gas_level: float = -1.0

    @cached_property
    def table(self) -> np.ndarray:
        """(segments, 7) array: start (u, v, depth), end (u, v, depth), radius."""
        return np.array([[*s.start, *s.end, s.radius] for s in self.segments], dtype=np.float64)

    @cached_property
    def depth_range(self) -> tuple[float, float]:
        """Shallowest and deepest depth (mm) the tube reaches (ignoring its radius)."""
        depths = self.table[:, [2, 5]]
        return float(depths.min()), float(depths.max())


def vessel_tree(
    rng: np.random.Generator,
    root: tuple[float, float, float],
    direction: tuple[float, float, float],
    radius: float,
    length: float,
    generations: int,
    depth_scale: float,
    spread: float = 0.6,
) -> list[Segment]:
    """A branching tree: each segment splits in two thinner, shorter children.

    ``direction`` is in (u, v, depth/depth_scale) units, so a tree spreads similarly in-plane and
    along z; ``length`` is in the same units.
    """
    segments: list[Segment] = []
    stack = [(root, np.asarray(direction, dtype=float), radius, length, generations)]
    while stack:
        start, heading, r, size, left = stack.pop()
        heading = heading / (np.linalg.norm(heading) + 1e-9)
        step = heading * size * rng.uniform(0.8, 1.2)
        end = (start[0] + step[0], start[1] + step[1], start[2] + step[2] * depth_scale)
        segments.append(Segment(start, end, r))
        if left <= 1:
            continue
        for _ in range(2):
            turn = rng.normal(0.0, spread, size=3)
            child = heading + turn
            stack.append((end, child, r * rng.uniform(0.68, 0.8), size * rng.uniform(0.7, 0.85), left - 1))
    return segments


def random_walk_tube(
    rng: np.random.Generator,
    start: tuple[float, float, float],
    steps: int,
    step_uv: float,
    step_depth: float,
    box: tuple[float, float, float, float, float, float],
    radius: float,
) -> tuple[Segment, ...]:
    """A meandering tube (a bowel loop) kept inside ``box`` = (u0, u1, v0, v1, d0, d1)."""
    u0, u1, v0, v1, d0, d1 = box
    point = np.asarray(start, dtype=float)
    heading = rng.uniform(0, 2 * math.pi)
    tilt = rng.uniform(-1, 1)
    segments: list[Segment] = []
    for _ in range(steps):
        heading += rng.normal(0.0, 0.7)
        tilt = float(np.clip(tilt + rng.normal(0.0, 0.5), -1.0, 1.0))
        step = np.array([math.cos(heading) * step_uv, math.sin(heading) * step_uv, tilt * step_depth])
        nxt = point + step
        if not u0 <= nxt[0] <= u1:
            step[0] = -step[0]
            heading = math.pi - heading
        if not v0 <= nxt[1] <= v1:
            step[1] = -step[1]
            heading = -heading
        if not d0 <= nxt[2] <= d1:
            step[2] = -step[2]
            tilt = -tilt
        nxt = point + step
        segments.append(Segment(tuple(point), tuple(nxt), radius * rng.uniform(0.9, 1.1)))
        point = nxt
    return tuple(segments)


def path_tube(points: list[tuple[float, float, float]], radius: float) -> tuple[Segment, ...]:
    """A tube through fixed points (the colon's course)."""
    return tuple(Segment(points[i], points[i + 1], radius) for i in range(len(points) - 1))
