"""Abdominal organs: liver, gallbladder, spleen, stomach, pancreas, kidneys, psoas muscles."""

from __future__ import annotations

from fsd.data.synth.anatomy import Anatomy
from fsd.data.synth.body_wall import Torso
from fsd.data.synth.canvas import Canvas
from fsd.data.synth.diaphragm import abdominal_part
from fsd.data.synth.geometry import (
    Blob,
    HalfPlane,
    Intersection,
    Shape,
    Union,
    Wobble,
    ellipsoid_profile,
    smooth_step,
)
from fsd.data.synth.spine import SpineFrame
from fsd.data.synth.tissues import Phase, Region, TissueTable

_LIVER_OUTLINE = Wobble(((2, 0.03, 0.4), (3, 0.025, 1.7), (5, 0.012, 0.2)))


def liver_shape(anatomy: Anatomy, torso: Torso) -> Shape | None:
    depth = torso.depth
    top, bottom = anatomy.landmarks["liver"]
    if not top < depth < bottom:
        return None
    below = abdominal_part(anatomy, torso)
    if below is None:
        return None
    du, dv, size = anatomy.jitter("liver")
    a, front, back = torso.cavity_half_axes
    t = (depth - top) / (bottom - top)
    grow = smooth_step(depth, top, top + 45.0) * (
        1.0 - 0.8 * smooth_step(depth, top + 0.45 * (bottom - top), bottom)
    )
    x, y = torso.point(-0.4 - 0.12 * t + du, -0.05 + 0.2 * t + dv)
    right = Blob(
        x,
        y,
        0.56 * a * size * grow + 2.0,
        0.72 * 0.5 * (front + back) * size * grow + 2.0,
        power=2.2,
        wobble=_LIVER_OUTLINE,
    )
    parts: list[Shape] = [right]
    left_profile = ellipsoid_profile(depth, *anatomy.landmarks["liver_left_lobe"])
    if left_profile > 0:
        lx, ly = torso.point(0.1 + du, -0.5 + dv)
        parts.append(
            Blob(
                lx,
                ly,
                0.45 * a * size * left_profile + 1.0,
                0.32 * front * size * left_profile + 1.0,
                angle=0.25,
            )
        )
    return Intersection([Union(parts), below])


def paint_liver(canvas: Canvas, anatomy: Anatomy, torso: Torso, tissues: TissueTable) -> None:
    shape = liver_shape(anatomy, torso)
    if shape is not None:
        canvas.paint(shape, tissues.liver, Region.LIVER, texture_hu=7.0)
    profile = ellipsoid_profile(torso.depth, *anatomy.landmarks["gallbladder"])
    if profile > 0:
        x, y = torso.point(-0.2, -0.5)
        canvas.paint(
            Blob(x, y, 17.0 * profile + 1.0, 13.0 * profile + 1.0, angle=0.6),
            tissues.fluid + 5.0,
            Region.GALLBLADDER,
            only=(Region.LIVER, Region.ABDOMEN_FAT),
        )


def paint_spleen(canvas: Canvas, anatomy: Anatomy, torso: Torso, tissues: TissueTable, phase: Phase) -> None:
    profile = ellipsoid_profile(torso.depth, *anatomy.landmarks["spleen"])
    below = abdominal_part(anatomy, torso)
    if profile <= 0 or below is None:
        return
    du, dv, size = anatomy.jitter("spleen")
    a, _, back = torso.cavity_half_axes
    x, y = torso.point(0.66 + du, 0.38 + dv)
    spleen = Blob(x, y, 0.24 * a * size * profile + 1.0, 0.5 * back * size * profile + 1.0, angle=-0.6)
    # arterial phase: the spleen enhances in stripes ("zebra" pattern); other phases: uniform
    texture = 25.0 if phase is Phase.ARTERIAL else 6.0
    canvas.paint(Intersection([spleen, below]), tissues.spleen, Region.SPLEEN, texture_hu=texture)


def paint_stomach(canvas: Canvas, anatomy: Anatomy, torso: Torso, tissues: TissueTable) -> None:
    profile = ellipsoid_profile(torso.depth, *anatomy.landmarks["stomach"])
    below = abdominal_part(anatomy, torso)
    if profile <= 0 or below is None:
        return
    du, dv, size = anatomy.jitter("stomach")
    a, front, _ = torso.cavity_half_axes
    x, y = torso.point(0.38 + du, -0.3 + dv)
    outer = Blob(
        x,
        y,
        0.3 * a * size * profile + 2.0,
        0.42 * front * size * profile + 2.0,
        angle=0.5,
        wobble=Wobble(((3, 0.05, 0.7),)),
    )
    inner = outer.grown(-4.0)
    canvas.paint(Intersection([outer, below]), tissues.bowel_wall, Region.STOMACH, only=(Region.ABDOMEN_FAT,))
    canvas.paint(
        Intersection([inner, below]),
        tissues.fluid + 15.0,
        Region.STOMACH,
        texture_hu=25.0,
        only=(Region.STOMACH,),
    )
    level = y - 0.35 * inner.b
    canvas.paint(
        Intersection([inner, below, HalfPlane(level)]),
        tissues.bowel_gas,
        Region.STOMACH,
        only=(Region.STOMACH,),
    )


def paint_pancreas(
    canvas: Canvas, anatomy: Anatomy, torso: Torso, frame: SpineFrame, tissues: TissueTable
) -> None:
    profile = ellipsoid_profile(torso.depth, *anatomy.landmarks["pancreas"])
    if profile <= 0:
        return
    du, dv, size = anatomy.jitter("pancreas")
    a, _, _ = torso.cavity_half_axes
    shape = Blob(
        frame.x + 15.0 + du * a,
        frame.y - frame.half_depth - 32.0,
        0.42 * a * size * profile + 2.0,
        11.0 * profile + 2.0,
        angle=-0.3,
        wobble=Wobble(((6, 0.06, 0.3), (9, 0.04, 1.0))),
    )
    canvas.paint(shape, tissues.pancreas, Region.PANCREAS, texture_hu=14.0, only=(Region.ABDOMEN_FAT,))


def kidney_shapes(anatomy: Anatomy, torso: Torso, frame: SpineFrame) -> list[tuple[int, Blob, float]]:
    """(side, outline, position 0..1 from the upper pole) of the kidneys cut by this slice."""
    result = []
    _, _, size = anatomy.jitter("kidney")
    for side, name in ((-1, "right_kidney"), (1, "left_kidney")):
        top, bottom = anatomy.landmarks[name]
        profile = ellipsoid_profile(torso.depth, top, bottom)
        if profile <= 0.0:
            continue
        position = (torso.depth - top) / (bottom - top)
        x = frame.x + side * (frame.half_width + 42.0 + 8.0 * position)
        y = frame.y + 6.0
        blob = Blob(
            x, y, 30.0 * size * profile + 1.0, 23.0 * size * profile + 1.0, angle=side * 0.55, power=2.1
        )
        result.append((side, blob, position))
    return result


def paint_kidneys(
    canvas: Canvas, anatomy: Anatomy, torso: Torso, frame: SpineFrame, tissues: TissueTable
) -> None:
    for side, outer, position in kidney_shapes(anatomy, torso, frame):
        canvas.paint(outer, tissues.kidney_cortex, Region.KIDNEY, texture_hu=6.0)
        canvas.paint(outer.scaled(0.72), tissues.kidney_medulla, Region.KIDNEY, texture_hu=10.0)
        if 0.3 < position < 0.7:
            # the hilum opens towards the spine: sinus fat and the renal pelvis
            hx = outer.cx - side * 0.55 * outer.a
            sinus = Blob(hx, outer.cy - 4.0, 0.5 * outer.a, 0.45 * outer.b)
            canvas.paint(sinus, tissues.fat, Region.KIDNEY, texture_hu=8.0)
            canvas.paint(
                Blob(hx - side * 4.0, outer.cy - 4.0, 0.22 * outer.a, 0.2 * outer.b),
                tissues.fluid,
                Region.KIDNEY,
            )


def paint_psoas(
    canvas: Canvas, anatomy: Anatomy, torso: Torso, frame: SpineFrame, tissues: TissueTable
) -> None:
    top, bottom = anatomy.landmarks["psoas"]
    if not top < torso.depth < bottom:
        return
    grow = smooth_step(torso.depth, top, top + 110.0)
    lateral = smooth_step(torso.depth, anatomy.top("iliac_wing") + 30.0, bottom)
    radius = 6.0 + 20.0 * grow * anatomy.muscle_scale
    for side in (-1, 1):
        x = frame.x + side * (frame.half_width + radius * 0.6 + 40.0 * lateral)
        y = frame.y - 0.1 * frame.half_depth - 25.0 * lateral
        canvas.paint(Blob(x, y, radius, radius * 1.1), tissues.muscle, Region.MUSCLE, texture_hu=6.0)
