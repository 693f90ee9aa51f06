"""Ribs with their costal cartilages, the sternum, clavicles and scapulae.

A rib leaves its vertebra and slopes down as it runs round the chest, so an axial slice cuts each
rib as a short arc somewhere on the chest wall; neighbouring slices show the arcs moving round.
"""

from __future__ import annotations

import math

import numpy as np

from fsd.data.synth.anatomy import Anatomy, Rib
from fsd.data.synth.body_wall import Torso
from fsd.data.synth.canvas import Canvas
from fsd.data.synth.geometry import Blob, Capsule
from fsd.data.synth.tissues import Region, TissueTable

RIB_HALF_HEIGHT = 4.5  # mm, half the rib's vertical size


def _rib_angles(rib: Rib, depth: float, half_height: float) -> tuple[float, float] | None:
    """Angles (from the back, radians) where the rib crosses the slice; None if it misses it.

    The rib's depth grows linearly with the angle: ``origin + drop * angle / pi``.
    """
    low = (depth - half_height - rib.origin) / rib.drop
    high = (depth + half_height - rib.origin) / rib.drop
    if high <= 0.0 or low >= 1.0:
        return None
    return math.pi * max(low, 0.0), math.pi * min(high, 1.0)


def _wall_point(torso: Torso, side: int, phi: float, outward_mm: float) -> tuple[float, float]:
    """Point on the cavity outline at angle ``phi`` from the back, pushed ``outward_mm`` out."""
    u, v = side * math.sin(phi), math.cos(phi)
    power = torso.power[0] if v < 0 else torso.power[1]
    norm = (abs(u) ** power + abs(v) ** power) ** (1.0 / power)
    x, y = torso.point(u / norm, v / norm)
    dx, dy = x - torso.cx, y - torso.cy
    length = math.hypot(dx, dy) or 1.0
    return x + outward_mm * dx / length, y + outward_mm * dy / length


def _paint_along_wall(
    canvas: Canvas,
    torso: Torso,
    side: int,
    phi_low: float,
    phi_high: float,
    radius: float,
    hu: float,
    region: Region,
    texture: float,
) -> None:
    """A rounded bar following the chest wall between two angles: a rib or cartilage cut."""
    steps = max(1, int(math.ceil((phi_high - phi_low) / 0.15)))
    angles = np.linspace(phi_low, phi_high, steps + 1)
    points = [_wall_point(torso, side, float(phi), 4.5) for phi in angles]
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
        canvas.paint(Capsule(x0, y0, x1, y1, radius), hu, region, texture_hu=texture)


def paint_ribs(canvas: Canvas, anatomy: Anatomy, torso: Torso, tissues: TissueTable) -> None:
    cartilage_hu = 300.0 if anatomy.calcified_cartilage else tissues.cartilage
    start = 0.1 * math.pi
    for rib in anatomy.ribs:
        angles = _rib_angles(rib, torso.depth, RIB_HALF_HEIGHT)
        if angles is None:
            continue
        phi_low, phi_high = max(angles[0], start), angles[1]
        bone_high = min(phi_high, rib.bone_end)
        if bone_high > phi_low:
            _paint_along_wall(
                canvas,
                torso,
                rib.side,
                phi_low,
                bone_high,
                4.2,
                tissues.cortical_bone - 150.0,
                Region.CORTICAL_BONE,
                50.0,
            )
            _paint_along_wall(
                canvas, torso, rib.side, phi_low, bone_high, 2.3, tissues.marrow + 50.0, Region.MARROW, 45.0
            )
        cartilage_low = max(phi_low, rib.bone_end)
        cartilage_high = min(phi_high, rib.cartilage_end)
        if cartilage_high > cartilage_low:
            _paint_along_wall(
                canvas,
                torso,
                rib.side,
                cartilage_low,
                cartilage_high,
                4.0,
                cartilage_hu,
                Region.CARTILAGE,
                20.0,
            )


def paint_sternum(canvas: Canvas, anatomy: Anatomy, torso: Torso, tissues: TissueTable) -> None:
    if not anatomy.spans("sternum", torso.depth):
        return
    top, bottom = anatomy.landmarks["sternum"]
    t = (torso.depth - top) / (bottom - top)
    half_width = 24.0 if t < 0.25 else 15.0 - 6.0 * max(t - 0.85, 0.0) / 0.15
    x, y = torso.point(0.0, -1.0)
    outer = Blob(x, y - 4.0, half_width, 6.5, power=2.5)
    canvas.paint(outer, tissues.cortical_bone - 200.0, Region.CORTICAL_BONE, texture_hu=50.0)
    canvas.paint(
        Blob(x, y - 4.0, half_width - 2.0, 4.5, power=2.5), tissues.marrow, Region.MARROW, texture_hu=40.0
    )


def paint_clavicles(canvas: Canvas, anatomy: Anatomy, torso: Torso, tissues: TissueTable) -> None:
    """Each clavicle rises from the sternum to the shoulder; a slice shows the part at its level."""
    top, bottom = anatomy.landmarks["clavicle"]
    for side in (-1, 1):
        t_values = np.linspace(0.0, 1.0, 41)
        depths = bottom + (top - bottom) * t_values
        visible = t_values[np.abs(depths - torso.depth) < 7.0]
        if visible.size == 0:
            continue
        start = torso.point(side * (0.12 + 0.8 * visible[0]), -1.08 + 0.5 * visible[0])
        end = torso.point(side * (0.12 + 0.8 * visible[-1]), -1.08 + 0.5 * visible[-1])
        canvas.paint(
            Capsule(*start, *end, 8.0), tissues.cortical_bone - 100.0, Region.CORTICAL_BONE, texture_hu=50.0
        )
        canvas.paint(Capsule(*start, *end, 5.5), tissues.marrow, Region.MARROW, texture_hu=40.0)


def paint_scapulae(canvas: Canvas, anatomy: Anatomy, torso: Torso, tissues: TissueTable) -> None:
    """Thin triangular blades on the back of the chest, outside the ribs."""
    if not anatomy.spans("scapula", torso.depth):
        return
    top, bottom = anatomy.landmarks["scapula"]
    t = (torso.depth - top) / (bottom - top)
    width = 1.0 - t
    for side in (-1, 1):
        medial = torso.point(side * (0.32 + 0.12 * t), 1.12)
        lateral = torso.point(side * (0.32 + 0.12 * t + 0.55 * width), 1.12 - 0.5 * width)
        canvas.paint(
            Capsule(*medial, *lateral, 3.0 + (4.0 if t < 0.15 else 0.0)),
            tissues.cortical_bone - 250.0,
            Region.CORTICAL_BONE,
            texture_hu=50.0,
        )
        if t < 0.2:
            glenoid = torso.point(side * (0.32 + 0.67), 0.45)
            canvas.paint(
                Blob(*glenoid, 16.0, 20.0),
                tissues.cortical_bone - 300.0,
                Region.CORTICAL_BONE,
                texture_hu=50.0,
            )
            canvas.paint(Blob(*glenoid, 13.0, 17.0), tissues.marrow, Region.MARROW, texture_hu=40.0)
