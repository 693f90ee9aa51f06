"""Pixel grid and 2D shapes, in millimetres, for drawing synthetic CT cross-sections.

Coordinates follow DICOM's patient axes for a supine, head-first scan: ``x`` grows towards the
patient's left (image right) and ``y`` towards the patient's back (image down), both in mm and
measured from the image centre. Shapes answer ``contains(x, y)`` on broadcast coordinate arrays
and give a bounding box, so a painter only evaluates them on the pixels they can touch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

BBox = tuple[float, float, float, float]
"""x_min, y_min, x_max, y_max in mm."""

UNBOUNDED: BBox = (-math.inf, -math.inf, math.inf, math.inf)


@dataclass(frozen=True)
class Window:
    """The pixels of a grid under a bounding box, with their mm coordinates."""

    rows: slice
    cols: slice
    x: np.ndarray  # (1, w) mm
    y: np.ndarray  # (h, 1) mm


@dataclass(frozen=True)
class Grid:
    """A square image of ``size`` pixels with isotropic ``spacing`` (mm), centred on (0, 0)."""

    size: int
    spacing: float

    @property
    def origin(self) -> float:
        """mm coordinate of the centre of pixel 0 (same for x and y)."""
        return -(self.size - 1) / 2.0 * self.spacing

    def to_px(self, mm: float | np.ndarray) -> float | np.ndarray:
        """0-based pixel coordinate of a mm coordinate."""
        return (mm - self.origin) / self.spacing

    def to_mm(self, px: float | np.ndarray) -> float | np.ndarray:
        """mm coordinate of a 0-based pixel coordinate."""
        return self.origin + px * self.spacing

    def window(self, box: BBox) -> Window | None:
        """Pixels whose centres can fall inside ``box``; None when the box misses the image."""
        x0, y0, x1, y1 = box
        c0 = max(0, int(math.floor(self.to_px(x0)))) if math.isfinite(x0) else 0
        r0 = max(0, int(math.floor(self.to_px(y0)))) if math.isfinite(y0) else 0
        c1 = min(self.size, int(math.ceil(self.to_px(x1))) + 1) if math.isfinite(x1) else self.size
        r1 = min(self.size, int(math.ceil(self.to_px(y1))) + 1) if math.isfinite(y1) else self.size
        if c0 >= c1 or r0 >= r1:
            return None
        x = self.to_mm(np.arange(c0, c1, dtype=np.float32))[None, :]
        y = self.to_mm(np.arange(r0, r1, dtype=np.float32))[:, None]
        return Window(slice(r0, r1), slice(c0, c1), x, y)


class Shape(Protocol):
    """A region of the image plane."""

    def bbox(self) -> BBox: ...

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Wobble:
    """Radius modulation 1 + sum(a_k cos(k theta + phase_k)) + spikes, for irregular outlines.

    ``spikes`` are (angle, height) pairs: narrow outward points (spiculation).
    """

    harmonics: tuple[tuple[int, float, float], ...] = ()
    spikes: tuple[tuple[float, float], ...] = ()
    spike_sharpness: float = 80.0

    def factor(self, theta: np.ndarray) -> np.ndarray:
        result = np.ones_like(theta)
        for k, amplitude, phase in self.harmonics:
            result = result + amplitude * np.cos(k * theta + phase)
        for angle, height in self.spikes:
            result = result + height * np.maximum(np.cos(theta - angle), 0.0) ** self.spike_sharpness
        return result

    def max_factor(self) -> float:
        return 1.0 + sum(abs(a) for _, a, _ in self.harmonics) + sum(max(h, 0.0) for _, h in self.spikes)


NO_WOBBLE = Wobble()


@dataclass(frozen=True)
class Blob:
    """A (super)ellipse with semi-axes ``a`` (along x before rotation) and ``b``, rotated by
    ``angle`` (radians), with an optional irregular outline. Star-shaped about its centre, so
    ``radius(theta)`` (mm, physical angle) describes the outline exactly."""

    cx: float
    cy: float
    a: float
    b: float
    angle: float = 0.0
    power: float = 2.0
    wobble: Wobble = NO_WOBBLE

    def radius(self, theta: np.ndarray) -> np.ndarray:
        local = theta - self.angle
        c = np.abs(np.cos(local)) / self.a
        s = np.abs(np.sin(local)) / self.b
        if self.power == 2.0:
            base = 1.0 / np.sqrt(c * c + s * s)
        else:
            base = (c**self.power + s**self.power) ** (-1.0 / self.power)
        return base * self.wobble.factor(theta)

    def bbox(self) -> BBox:
        r = (
            max(self.a, self.b)
            * self.wobble.max_factor()
            * (2.0 ** (0.5 - 1.0 / max(self.power, 2.0)) + 0.01)
        )
        return (self.cx - r, self.cy - r, self.cx + r, self.cy + r)

    def polar(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(distance from the centre in mm, angle) of points."""
        dx = x - self.cx
        dy = y - self.cy
        return np.sqrt(dx * dx + dy * dy), np.arctan2(dy, dx)

    def relative_radius(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Distance from the centre as a fraction of the outline radius (1 on the outline)."""
        rho, theta = self.polar(x, y)
        return rho / self.radius(theta)

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        if self.power == 2.0 and not self.wobble.harmonics and not self.wobble.spikes:
            dx = x - self.cx
            dy = y - self.cy
            if self.angle:
                cos, sin = math.cos(self.angle), math.sin(self.angle)
                dx, dy = dx * cos + dy * sin, -dx * sin + dy * cos
            return (dx / self.a) ** 2 + (dy / self.b) ** 2 < 1.0
        return self.relative_radius(x, y) < 1.0

    def scaled(self, factor: float) -> Blob:
        return Blob(self.cx, self.cy, self.a * factor, self.b * factor, self.angle, self.power, self.wobble)

    def grown(self, margin: float) -> Blob:
        return Blob(self.cx, self.cy, self.a + margin, self.b + margin, self.angle, self.power, self.wobble)


STAR_BINS = 1024


def angle_bins(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Index (0..STAR_BINS-1) of the angle of offsets (dx, dy)."""
    theta = np.arctan2(dy, dx)
    return ((theta + math.pi) * (STAR_BINS / (2 * math.pi))).astype(np.intp) % STAR_BINS


def bin_angles() -> np.ndarray:
    """The angle at the centre of each bin."""
    return -math.pi + (np.arange(STAR_BINS) + 0.5) * (2 * math.pi / STAR_BINS)


@dataclass(frozen=True, eq=False)
class Star:
    """A shape that is star-shaped about (cx, cy), given by its radius (mm) in each angle bin.

    Cheap to test against many pixels: one angle look-up per pixel instead of evaluating an
    outline formula; painters can reuse the polar coordinates of shapes sharing a centre.
    """

    cx: float
    cy: float
    radii: np.ndarray  # (STAR_BINS,) radius at each bin's angle

    @classmethod
    def of(cls, cx: float, cy: float, radius: Callable[[np.ndarray], np.ndarray]) -> Star:
        return cls(cx, cy, np.asarray(radius(bin_angles()), dtype=np.float32))

    def bbox(self) -> BBox:
        r = float(self.radii.max()) * 1.01
        return (self.cx - r, self.cy - r, self.cx + r, self.cy + r)

    def contains_polar(self, rho: np.ndarray, bins: np.ndarray) -> np.ndarray:
        return rho < self.radii[bins]

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        dx = x - self.cx
        dy = y - self.cy
        return self.contains_polar(np.sqrt(dx * dx + dy * dy), angle_bins(dx, dy))


@dataclass(frozen=True)
class Capsule:
    """Points within ``r`` mm of the segment (x0, y0)-(x1, y1): a vessel or bowel cut obliquely."""

    x0: float
    y0: float
    x1: float
    y1: float
    r: float

    def bbox(self) -> BBox:
        return (
            min(self.x0, self.x1) - self.r,
            min(self.y0, self.y1) - self.r,
            max(self.x0, self.x1) + self.r,
            max(self.y0, self.y1) + self.r,
        )

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return segment_distance(x, y, self.x0, self.y0, self.x1, self.y1) < self.r


def segment_distance(x: np.ndarray, y: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Distance (mm) from points to a segment."""
    vx, vy = x1 - x0, y1 - y0
    length2 = vx * vx + vy * vy
    if length2 <= 1e-12:
        return np.sqrt((x - x0) ** 2 + (y - y0) ** 2)
    t = np.clip(((x - x0) * vx + (y - y0) * vy) / length2, 0.0, 1.0)
    return np.sqrt((x - x0 - t * vx) ** 2 + (y - y0 - t * vy) ** 2)


@dataclass(frozen=True)
class Arc:
    """A band of ``thickness`` mm along an elliptical arc (centre, radii, angle range in radians,
    angle measured from +x towards +y): a rib, an iliac wing, a table top."""

    cx: float
    cy: float
    rx: float
    ry: float
    start: float
    stop: float
    thickness: float

    def bbox(self) -> BBox:
        r = max(self.rx, self.ry) + self.thickness
        return (self.cx - r, self.cy - r, self.cx + r, self.cy + r)

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        dx = (x - self.cx) / self.rx
        dy = (y - self.cy) / self.ry
        nr = np.sqrt(dx * dx + dy * dy)
        theta = np.arctan2(dy, dx)
        span = (self.stop - self.start) % (2 * math.pi)
        inside_angle = (theta - self.start) % (2 * math.pi) <= span
        half = 0.5 * self.thickness / min(self.rx, self.ry)
        return inside_angle & (np.abs(nr - 1.0) < half)


@dataclass(frozen=True)
class HalfPlane:
    """Points with ``y < level`` (``below=False``) or ``y >= level`` (``below=True``)."""

    level: float
    below: bool = False

    def bbox(self) -> BBox:
        return (
            (-math.inf, self.level, math.inf, math.inf)
            if self.below
            else (-math.inf, -math.inf, math.inf, self.level)
        )

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        hit = y >= self.level if self.below else y < self.level
        return np.broadcast_to(hit, np.broadcast_shapes(np.shape(x), np.shape(y)))


@dataclass(frozen=True)
class Union:
    parts: Sequence[Shape]

    def bbox(self) -> BBox:
        boxes = [part.bbox() for part in self.parts]
        return (
            min(b[0] for b in boxes),
            min(b[1] for b in boxes),
            max(b[2] for b in boxes),
            max(b[3] for b in boxes),
        )

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        result = self.parts[0].contains(x, y)
        for part in self.parts[1:]:
            result = result | part.contains(x, y)
        return result


@dataclass(frozen=True)
class Intersection:
    parts: Sequence[Shape]

    def bbox(self) -> BBox:
        boxes = [part.bbox() for part in self.parts]
        return (
            max(b[0] for b in boxes),
            max(b[1] for b in boxes),
            min(b[2] for b in boxes),
            min(b[3] for b in boxes),
        )

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        result = self.parts[0].contains(x, y)
        for part in self.parts[1:]:
            result = result & part.contains(x, y)
        return result


@dataclass(frozen=True)
class Difference:
    keep: Shape
    cut: Shape

    def bbox(self) -> BBox:
        return self.keep.bbox()

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.keep.contains(x, y) & ~self.cut.contains(x, y)


@dataclass(frozen=True)
class Custom:
    """Any predicate with a known bounding box."""

    box: BBox
    predicate: Callable[[np.ndarray, np.ndarray], np.ndarray]

    def bbox(self) -> BBox:
        return self.box

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.predicate(x, y)


def ellipsoid_profile(depth: float, top: float, bottom: float) -> float:
    """Relative cross-section size (0..1) of an ellipsoid spanning ``top``..``bottom`` in depth."""
    if bottom <= top or not top < depth < bottom:
        return 0.0
    half = 0.5 * (bottom - top)
    t = (depth - 0.5 * (top + bottom)) / half
    return math.sqrt(max(0.0, 1.0 - t * t))


def smooth_step(value: float, start: float, stop: float) -> float:
    """0 before ``start``, 1 after ``stop``, a smooth cubic ramp between."""
    if stop <= start:
        return 1.0 if value >= stop else 0.0
    t = min(max((value - start) / (stop - start), 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


def polygon_of(blob: Blob, vertices: int = 256) -> np.ndarray:
    """(vertices, 2) outline points (x, y in mm) of a blob, counter-clockwise in angle."""
    theta = np.linspace(-math.pi, math.pi, vertices, endpoint=False)
    radius = blob.radius(theta)
    return np.stack([blob.cx + radius * np.cos(theta), blob.cy + radius * np.sin(theta)], axis=1)
