"""The body outline at one level (skin, subcutaneous fat, muscle wall, cavity) and the table.

:class:`Torso` also maps "cavity coordinates" (u, v in -1..1 across the body cavity) to mm, which
the organ painters and the tubes use to follow the body's shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fsd.data.synth.anatomy import Anatomy
from fsd.data.synth.canvas import Canvas
from fsd.data.synth.geometry import Blob, Custom, Shape, Star, Wobble, smooth_step
from fsd.data.synth.tissues import Region, TissueTable


@dataclass(frozen=True)
class Torso:
    """The body's cross-section at one depth, centred at (cx, cy) mm."""

    depth: float
    cx: float
    cy: float
    half_width: float
    anterior: float
    posterior: float
    fat: tuple[float, float, float]  # lateral, anterior, posterior subcutaneous fat (mm)
    muscle: tuple[float, float, float]  # lateral, anterior, posterior muscle wall (mm)
    power: tuple[float, float]  # superellipse exponent of the front and back halves
    wobble: Wobble

    def outline(
        self, inset_lateral: float = 0.0, inset_anterior: float = 0.0, inset_posterior: float = 0.0
    ) -> Star:
        """The skin outline shrunk by the given insets (mm): superellipse halves front and back."""
        a = max(self.half_width - inset_lateral, 1.0)
        front = Blob(
            self.cx,
            self.cy,
            a,
            max(self.anterior - inset_anterior, 1.0),
            power=self.power[0],
            wobble=self.wobble,
        )
        back = Blob(
            self.cx,
            self.cy,
            a,
            max(self.posterior - inset_posterior, 1.0),
            power=self.power[1],
            wobble=self.wobble,
        )

        def radius(theta: np.ndarray) -> np.ndarray:
            return np.where(np.sin(theta) < 0, front.radius(theta), back.radius(theta))

        return Star.of(self.cx, self.cy, radius)

    @property
    def cavity_insets(self) -> tuple[float, float, float]:
        return (
            self.fat[0] + self.muscle[0],
            self.fat[1] + self.muscle[1],
            self.fat[2] + self.muscle[2],
        )

    @property
    def cavity_half_axes(self) -> tuple[float, float, float]:
        """Half width, anterior and posterior half depths of the body cavity (mm)."""
        lateral, anterior, posterior = self.cavity_insets
        return (
            max(self.half_width - lateral, 10.0),
            max(self.anterior - anterior, 10.0),
            max(self.posterior - posterior, 10.0),
        )

    def cavity(self) -> Shape:
        return self.outline(*self.cavity_insets)

    def point(self, u: float, v: float) -> tuple[float, float]:
        """mm position of cavity coordinates (u, v)."""
        a, front, back = self.cavity_half_axes
        return self.cx + u * a, self.cy + v * (front if v < 0 else back)

    def points(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """mm positions of arrays of cavity coordinates."""
        a, front, back = self.cavity_half_axes
        return self.cx + u * a, self.cy + v * np.where(v < 0, front, back)

    @property
    def back_y(self) -> float:
        return self.cy + self.posterior

    def cavity_uv(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cavity coordinates of mm positions."""
        a, front, back = self.cavity_half_axes
        u = (x - self.cx) / a
        dy = y - self.cy
        v = np.where(dy < 0, dy / front, dy / back)
        return u, v


def _region_weights(anatomy: Anatomy, depth: float) -> tuple[float, float, float]:
    """How much the level looks like chest, abdomen and pelvis (sums to 1)."""
    abdomen = smooth_step(depth, anatomy.top("liver") + 20.0, anatomy.bottom("lung"))
    pelvis = smooth_step(depth, anatomy.top("iliac_wing"), anatomy.top("iliac_wing") + 80.0)
    chest = 1.0 - abdomen
    return chest, abdomen * (1.0 - pelvis), abdomen * pelvis


def torso_at(anatomy: Anatomy, depth: float, offset: tuple[float, float]) -> Torso:
    """The body's cross-section at ``depth`` with its centre at ``offset`` (mm) in the image."""
    half_width, anterior, posterior = anatomy.body_size(depth)
    chest, abdomen, pelvis = _region_weights(anatomy, depth)
    fat = anatomy.fat_mm
    female_pelvis = 1.25 if anatomy.sex == "F" else 1.0
    fat_scale = 0.65 * chest + 1.15 * abdomen + 1.05 * female_pelvis * pelvis
    muscle = anatomy.muscle_scale
    upper_chest = chest * (1.0 - smooth_step(depth, 60.0, 160.0))
    hips = smooth_step(depth, anatomy.top("iliac_wing") + 40.0, anatomy.top("femoral_head"))
    muscle_lateral = (10.0 + 8.0 * upper_chest + 14.0 * pelvis + 34.0 * hips) * muscle
    muscle_anterior = (9.0 + 10.0 * upper_chest - 3.0 * pelvis + 10.0 * hips) * muscle
    muscle_posterior = (38.0 + 6.0 * pelvis) * muscle
    power_front = 2.25 * chest + 2.05 * abdomen + 2.3 * pelvis
    power_back = 3.0 * chest + 2.6 * abdomen + 2.3 * pelvis
    return Torso(
        depth=depth,
        cx=offset[0],
        cy=offset[1],
        half_width=half_width,
        anterior=anterior,
        posterior=posterior,
        fat=(fat * fat_scale, fat * fat_scale * 1.25, fat * fat_scale * 0.6),
        muscle=(muscle_lateral, muscle_anterior, muscle_posterior),
        power=(power_front, power_back),
        wobble=anatomy.outline,
    )


def paint_table(canvas: Canvas, torso: Torso, table_gap: float) -> None:
    """A gently curved couch under the patient: a foam pad on a carbon-fibre board."""
    top = torso.back_y + table_gap
    half_width = 260.0
    sag = half_width**2 / (2.0 * _TABLE_RADIUS)
    layers = (
        (0.0, 24.0, -880.0, 20.0),
        (24.0, 3.0, 280.0, 0.0),
        (27.0, 17.0, -600.0, 15.0),
        (44.0, 3.0, 280.0, 0.0),
    )
    for start, thickness, hu, texture in layers:
        canvas.paint(
            _table_layer(top + start, thickness, half_width, sag), hu, Region.TABLE, texture_hu=texture
        )


_TABLE_RADIUS = 900.0


def _table_layer(top: float, thickness: float, half_width: float, sag: float) -> Custom:
    """A band ``thickness`` mm thick whose upper edge curves up by ``sag`` mm at the sides."""

    def predicate(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        edge = top - x * x / (2.0 * _TABLE_RADIUS)
        return (y >= edge) & (y < edge + thickness) & (np.abs(x) < half_width)

    return Custom((-half_width, top - sag, half_width, top + thickness), predicate)


def paint_body_wall(canvas: Canvas, torso: Torso, tissues: TissueTable) -> None:
    """Skin, subcutaneous fat, the muscle wall, and a fat-filled cavity to draw organs into."""
    canvas.paint(torso.outline(), tissues.skin, Region.SKIN)
    canvas.paint(torso.outline(2.0, 2.0, 2.0), tissues.fat, Region.SUBCUT_FAT, texture_hu=8.0)
    lateral, anterior, posterior = torso.fat
    canvas.paint(torso.outline(lateral, anterior, posterior), tissues.muscle, Region.MUSCLE, texture_hu=6.0)
    canvas.paint(torso.cavity(), tissues.fat, Region.ABDOMEN_FAT, texture_hu=8.0)
