"""RECIST measurement of a lesion outline, and DeepLesion's box derived from it.

The long axis is the longest chord of the outline; the short axis is the longest chord
perpendicular to it. DeepLesion's boxes are the extent of the four end points padded by 5 pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BOX_PADDING_PX = 5.0


@dataclass(frozen=True)
class Recist:
    """End points (x, y) in 0-based pixel coordinates: long axis p1-p2, short axis p3-p4."""

    long_axis: tuple[tuple[float, float], tuple[float, float]]
    short_axis: tuple[tuple[float, float], tuple[float, float]]

    @property
    def long_px(self) -> float:
        (x1, y1), (x2, y2) = self.long_axis
        return math.hypot(x2 - x1, y2 - y1)

    @property
    def short_px(self) -> float:
        (x1, y1), (x2, y2) = self.short_axis
        return math.hypot(x2 - x1, y2 - y1)

    def points(self) -> np.ndarray:
        return np.array([*self.long_axis, *self.short_axis], dtype=np.float64)

    def box(self, width: int, height: int) -> tuple[float, float, float, float]:
        """x1, y1, x2, y2 (0-based): end-point extent + 5 px, clipped to the image."""
        points = self.points()
        x1, y1 = points.min(axis=0) - BOX_PADDING_PX
        x2, y2 = points.max(axis=0) + BOX_PADDING_PX
        return (
            float(max(x1, 0.0)),
            float(max(y1, 0.0)),
            float(min(x2, width - 1.0)),
            float(min(y2, height - 1.0)),
        )


def _longest_chord(points: np.ndarray) -> tuple[int, int]:
    differences = points[:, None, :] - points[None, :, :]
    distances = np.einsum("ijk,ijk->ij", differences, differences)
    flat = int(np.argmax(distances))
    return divmod(flat, len(points))


def _crossings(polygon: np.ndarray, position: float) -> np.ndarray:
    """v coordinates where the closed polygon (columns u, v) crosses the line u = position."""
    u = polygon[:, 0]
    v = polygon[:, 1]
    u_next = np.roll(u, -1)
    v_next = np.roll(v, -1)
    crossing = (u - position) * (u_next - position) < 0
    t = (position - u[crossing]) / (u_next[crossing] - u[crossing])
    return np.sort(v[crossing] + t * (v_next[crossing] - v[crossing]))


def measure(polygon: np.ndarray, samples: int = 200) -> Recist:
    """RECIST axes of a closed outline given as (n, 2) points (x, y) in pixels."""
    polygon = np.asarray(polygon, dtype=np.float64)
    i, j = _longest_chord(polygon)
    p1, p2 = polygon[i], polygon[j]
    axis = (p2 - p1) / max(np.linalg.norm(p2 - p1), 1e-12)
    normal = np.array([-axis[1], axis[0]])
    local = np.stack([(polygon - p1) @ axis, (polygon - p1) @ normal], axis=1)
    best_length, best = -1.0, (0.0, 0.0, 0.0)
    # offset the sample lines slightly so they never pass exactly through a vertex
    for position in np.linspace(local[:, 0].min(), local[:, 0].max(), samples + 2)[1:-1] + 1e-7:
        crossings = _crossings(local, position)
        for k in range(0, len(crossings) - 1, 2):
            length = crossings[k + 1] - crossings[k]
            if length > best_length:
                best_length, best = length, (position, crossings[k], crossings[k + 1])
    position, v_low, v_high = best
    p3 = p1 + position * axis + v_low * normal
    p4 = p1 + position * axis + v_high * normal
    return Recist(
        long_axis=((float(p1[0]), float(p1[1])), (float(p2[0]), float(p2[1]))),
        short_axis=((float(p3[0]), float(p3[1])), (float(p4[0]), float(p4[1]))),
    )
