"""Chest contents: lungs, mediastinum, heart, airways, oesophagus, pulmonary trunk, SVC, breasts."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from fsd.data.synth.anatomy import Anatomy
from fsd.data.synth.body_wall import Torso
from fsd.data.synth.canvas import Canvas
from fsd.data.synth.diaphragm import abdominal_part
from fsd.data.synth.geometry import Blob, Capsule, Difference, angle_bins, ellipsoid_profile, smooth_step
from fsd.data.synth.spine import SpineFrame
from fsd.data.synth.tissues import Region, TissueTable


def _lung_hu(torso: Torso, tissues: TissueTable) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Lung density rising towards the back (dependent lung)."""

    def field(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        _, v = torso.cavity_uv(x, y)
        return tissues.lung - 25.0 + 90.0 * np.clip(v, 0.0, 1.0) ** 2

    return field


def heart_blob(anatomy: Anatomy, torso: Torso) -> Blob | None:
    top, bottom = anatomy.landmarks["heart"]
    profile = ellipsoid_profile(torso.depth, top - 10.0, bottom)
    if profile <= 0.0:
        return None
    du, dv, size = anatomy.jitter("heart")
    a, front, _ = torso.cavity_half_axes
    x, y = torso.point(0.14 + du, -0.42 + dv)
    return Blob(
        x, y, 0.42 * a * size * profile + 1.0, 0.42 * front * size * profile + 1.0, angle=-0.5, power=2.1
    )


def mediastinum_shape(anatomy: Anatomy, torso: Torso, frame: SpineFrame) -> Blob:
    """The central column of the chest between the lungs (fat, vessels, airways)."""
    a, front, _ = torso.cavity_half_axes
    du, _, size = anatomy.jitter("mediastinum")
    fat = 1.0 + anatomy.fat_mm / 60.0
    width = (
        (
            22.0
            + 10.0 * smooth_step(torso.depth, anatomy.top("aortic_arch") - 20.0, anatomy.top("aortic_arch"))
        )
        * size
        * fat
    )
    top_y = torso.point(0.0, -1.0)[1]
    bottom_y = frame.y + 0.2 * frame.half_depth
    return Blob(torso.cx + du * a, 0.5 * (top_y + bottom_y), width, 0.5 * (bottom_y - top_y), power=2.6)


def paint_lungs_and_mediastinum(
    canvas: Canvas, anatomy: Anatomy, torso: Torso, frame: SpineFrame, tissues: TissueTable
) -> None:
    """Fill the chest part of the cavity with lung, then draw the mediastinum over its middle."""
    depth = torso.depth
    if depth >= anatomy.bottom("lung") or depth <= anatomy.top("lung"):
        return
    below = abdominal_part(anatomy, torso)
    chest = torso.cavity() if below is None else Difference(torso.cavity(), below)
    apex_shrink = smooth_step(depth, anatomy.top("lung"), anatomy.top("lung") + 45.0)
    if apex_shrink < 1.0:
        # the apices are small domes inside a thick neck/shoulder wall
        a, front, back = torso.cavity_half_axes
        for side in (-1, 1):
            x, y = torso.point(side * 0.5, 0.2)
            apex = Blob(x, y, 0.45 * a * apex_shrink + 2.0, 0.6 * back * apex_shrink + 2.0)
            canvas.paint(
                apex, _lung_hu(torso, tissues), Region.LUNG, texture_hu=12.0, only=(Region.ABDOMEN_FAT,)
            )
        canvas.paint(chest, tissues.muscle - 20.0, Region.MUSCLE, texture_hu=8.0, only=(Region.ABDOMEN_FAT,))
    else:
        canvas.paint(chest, _lung_hu(torso, tissues), Region.LUNG, texture_hu=12.0)
    canvas.paint(
        mediastinum_shape(anatomy, torso, frame), tissues.fat + 10.0, Region.MEDIASTINUM, texture_hu=8.0
    )
    heart = heart_blob(anatomy, torso)
    if heart is not None:
        canvas.paint(heart.grown(5.0), tissues.fat, Region.MEDIASTINUM, texture_hu=8.0)


def paint_heart(canvas: Canvas, anatomy: Anatomy, torso: Torso, tissues: TissueTable) -> None:
    heart = heart_blob(anatomy, torso)
    if heart is None:
        return
    canvas.paint(heart, tissues.myocardium, Region.HEART, texture_hu=5.0)
    top, bottom = anatomy.landmarks["heart"]
    t = (torso.depth - top) / (bottom - top)
    cos, sin = math.cos(heart.angle), math.sin(heart.angle)

    def at(p: float, q: float) -> tuple[float, float]:
        dx, dy = p * heart.a, q * heart.b
        return heart.cx + dx * cos - dy * sin, heart.cy + dx * sin + dy * cos

    if t < 0.35:
        # atria: left atrium at the back, right atrium to the right
        canvas.paint(
            Blob(*at(-0.1, 0.45), 0.45 * heart.a, 0.35 * heart.b), tissues.blood, Region.HEART, texture_hu=4.0
        )
        canvas.paint(
            Blob(*at(-0.6, 0.05), 0.35 * heart.a, 0.45 * heart.b), tissues.blood, Region.HEART, texture_hu=4.0
        )
    else:
        # ventricles: thick-walled left ventricle, crescent right ventricle in front
        canvas.paint(
            Blob(*at(0.25, 0.15), 0.33 * heart.a, 0.38 * heart.b), tissues.blood, Region.HEART, texture_hu=4.0
        )
        canvas.paint(
            Blob(*at(-0.35, -0.25), 0.42 * heart.a, 0.38 * heart.b),
            tissues.blood,
            Region.HEART,
            texture_hu=4.0,
        )
        if t < 0.6:
            canvas.paint(
                Blob(*at(-0.55, 0.35), 0.3 * heart.a, 0.3 * heart.b),
                tissues.blood,
                Region.HEART,
                texture_hu=4.0,
            )


def paint_airways(
    canvas: Canvas, anatomy: Anatomy, torso: Torso, frame: SpineFrame, tissues: TissueTable
) -> None:
    """Trachea down to the carina, then the two main bronchi running out to the hila."""
    depth = torso.depth
    top, carina = anatomy.landmarks["trachea"]
    y = frame.y - frame.half_depth - 20.0
    if top < depth <= carina:
        canvas.paint(Blob(torso.cx, y, 11.0, 10.0), tissues.muscle, Region.AIRWAY)
        canvas.paint(Blob(torso.cx, y, 9.0, 8.0), tissues.air, Region.AIRWAY)
    elif carina < depth < carina + 30.0:
        spread = 8.0 + 1.1 * (depth - carina)
        for side in (-1, 1):
            x0, x1 = torso.cx + side * 5.0, torso.cx + side * spread
            canvas.paint(Capsule(x0, y, x1, y + 4.0, 7.5), tissues.muscle, Region.AIRWAY)
            canvas.paint(Capsule(x0, y, x1, y + 4.0, 5.5), tissues.air, Region.AIRWAY)
    # oesophagus behind the airway, in front of the spine
    if top < depth < anatomy.top("stomach") + 10.0:
        ex = torso.cx + 4.0 + 10.0 * smooth_step(depth, carina, anatomy.top("stomach"))
        ey = frame.y - frame.half_depth - 7.0
        canvas.paint(Blob(ex, ey, 8.0, 6.0), tissues.muscle - 5.0, Region.MEDIASTINUM)
        canvas.paint(Blob(ex, ey - 0.5, 2.0, 1.5), tissues.air, Region.MEDIASTINUM)


def paint_central_vessels(canvas: Canvas, anatomy: Anatomy, torso: Torso, tissues: TissueTable) -> None:
    """Ascending aorta, pulmonary trunk and arteries, superior vena cava."""
    depth = torso.depth
    _, front, _ = torso.cavity_half_axes
    if anatomy.spans("ascending_aorta", depth):
        canvas.paint(Blob(torso.cx - 8.0, torso.cy - 0.42 * front, 15.0, 15.0), tissues.aorta, Region.VESSEL)
    if anatomy.spans("pulmonary_trunk", depth):
        px, py = torso.cx + 20.0, torso.cy - 0.55 * front
        canvas.paint(Blob(px, py, 13.0, 13.0), tissues.blood, Region.VESSEL)
        bottom = anatomy.bottom("pulmonary_trunk")
        if depth > bottom - 15.0:
            for side in (-1, 1):
                hx, hy = torso.point(side * 0.28, 0.0)
                canvas.paint(
                    Capsule(px, py, hx, hy, 9.0),
                    tissues.blood,
                    Region.VESSEL,
                    only=(Region.MEDIASTINUM, Region.VESSEL, Region.LUNG),
                )
    if anatomy.spans("svc", depth):
        canvas.paint(Blob(torso.cx - 30.0, torso.cy - 0.4 * front, 10.0, 11.0), tissues.veins, Region.VESSEL)


def paint_breasts(canvas: Canvas, anatomy: Anatomy, torso: Torso, tissues: TissueTable) -> None:
    if anatomy.sex != "F":
        return
    profile = ellipsoid_profile(torso.depth, *anatomy.landmarks["breast"])
    if profile <= 0.0:
        return
    size = (0.6 + anatomy.fat_mm / 50.0) * profile
    outline = torso.outline()
    for side in (-1, 1):
        # sit the breast on the skin of the chest, a little to the side of the sternum
        angle = -0.5 * math.pi + side * 0.62
        bin_index = int(angle_bins(np.array(math.cos(angle)), np.array(math.sin(angle))))
        radius = float(outline.radii[bin_index])
        x = torso.cx + radius * math.cos(angle)
        y = torso.cy + radius * math.sin(angle) + 8.0 * size
        outer = Blob(x, y, 72.0 * size + 4.0, 26.0 * size + 4.0, angle=side * 0.55)
        canvas.paint(outer, tissues.skin, Region.BREAST, only=(Region.AIR,))
        canvas.paint(
            outer.grown(-2.0), tissues.fat, Region.BREAST, texture_hu=10.0, only=(Region.BREAST, Region.SKIN)
        )
        gland = Blob(x, y - 4.0 * size, 40.0 * size, 12.0 * size, angle=side * 0.55)
        canvas.paint(
            gland,
            tissues.breast_gland,
            Region.BREAST,
            texture_hu=30.0,
            only=(Region.BREAST, Region.SUBCUT_FAT),
        )
