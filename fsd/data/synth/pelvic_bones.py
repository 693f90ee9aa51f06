"""Pelvic skeleton: sacrum, iliac wings, acetabula with femoral heads, femurs, pubis, ischium."""

from __future__ import annotations

import math

from fsd.data.synth.anatomy import Anatomy
from fsd.data.synth.body_wall import Torso
from fsd.data.synth.canvas import Canvas
from fsd.data.synth.geometry import Arc, Blob, Capsule, Shape, Wobble
from fsd.data.synth.spine import spine_frame
from fsd.data.synth.tissues import Region, TissueTable


def _bone(
    canvas: Canvas, outer: Shape, inner: Shape | None, tissues: TissueTable, marrow_hu: float | None = None
) -> None:
    canvas.paint(outer, tissues.cortical_bone - 100.0, Region.CORTICAL_BONE, texture_hu=60.0)
    if inner is not None:
        canvas.paint(
            inner, tissues.marrow if marrow_hu is None else marrow_hu, Region.MARROW, texture_hu=55.0
        )


def _fraction(anatomy: Anatomy, name: str, depth: float) -> float | None:
    top, bottom = anatomy.landmarks[name]
    if not top < depth < bottom:
        return None
    return (depth - top) / (bottom - top)


def paint_sacrum(canvas: Canvas, anatomy: Anatomy, torso: Torso, tissues: TissueTable) -> None:
    t = _fraction(anatomy, "sacrum", torso.depth)
    if t is None:
        return
    frame = spine_frame(anatomy, torso)
    half_width = (52.0 - 38.0 * t) * math.sqrt(anatomy.width_scale)
    half_depth = 17.0 - 8.0 * t
    x, y = frame.x, frame.y + 6.0 + 14.0 * t
    outer = Blob(x, y, half_width, half_depth, power=2.4, wobble=Wobble(((2, 0.08, math.pi),)))
    _bone(canvas, outer, outer.grown(-2.5), tissues)
    if t < 0.7:
        for side in (-1, 1):
            canvas.paint(
                Blob(x + side * 0.45 * half_width, y - 2.0, 4.5, 3.5), tissues.fat + 20.0, Region.MARROW
            )
        canvas.paint(Blob(x, y + 0.45 * half_depth, 7.0, 4.0), tissues.csf, Region.SPINAL_CANAL)


def paint_iliac_wings(canvas: Canvas, anatomy: Anatomy, torso: Torso, tissues: TissueTable) -> None:
    """Curved bony plates from the sacroiliac joints round to the front, with the iliacus muscle
    in their hollow; they shorten and thicken towards the hips."""
    t = _fraction(anatomy, "iliac_wing", torso.depth)
    if t is None:
        return
    frame = spine_frame(anatomy, torso)
    size = math.sqrt(anatomy.width_scale)
    thickness = 7.0 + 8.0 * t * t
    for side in (-1, 1):
        cx, cy = frame.x + side * 55.0 * size, frame.y - 60.0 * size
        rx, ry = (0.42 * torso.half_width + 6.0 * t), 68.0 * size
        back_angle = 0.39 * math.pi
        front_angle = (1.19 - 0.3 * t) * math.pi
        if side < 0:
            start, stop = back_angle, front_angle
            thick_start, thick_stop = back_angle, back_angle + 0.25 * math.pi
        else:
            start, stop = math.pi - front_angle, math.pi - back_angle
            thick_start, thick_stop = math.pi - back_angle - 0.25 * math.pi, math.pi - back_angle
        iliacus = Blob(cx + side * 0.55 * rx, cy + 0.15 * ry, 0.32 * rx, 0.62 * ry, angle=-side * 0.3)
        gluteal = Arc(cx, cy, rx + 0.5 * thickness + 12.0, ry + 0.5 * thickness + 12.0, start, stop, 26.0)
        canvas.paint(
            iliacus,
            tissues.muscle,
            Region.MUSCLE,
            texture_hu=6.0,
            only=(Region.PELVIC_FAT, Region.ABDOMEN_FAT),
        )
        canvas.paint(
            gluteal,
            tissues.muscle + 5.0,
            Region.MUSCLE,
            texture_hu=6.0,
            only=(Region.PELVIC_FAT, Region.ABDOMEN_FAT, Region.MUSCLE),
        )
        _bone(
            canvas,
            Arc(cx, cy, rx, ry, start, stop, thickness),
            Arc(cx, cy, rx, ry, start, stop, max(thickness - 4.0, 1.0)),
            tissues,
        )
        # the thick posterior ilium beside the sacroiliac joint
        posterior = thickness + 10.0 * (1.0 - t)
        _bone(
            canvas,
            Arc(cx, cy, rx, ry, thick_start, thick_stop, posterior),
            Arc(cx, cy, rx, ry, thick_start, thick_stop, posterior - 4.0),
            tissues,
        )


def hip_centre(anatomy: Anatomy, torso: Torso, side: int) -> tuple[float, float]:
    """Centre (mm) of a femoral head: about half-way from the midline to the skin."""
    return torso.cx + side * 0.5 * torso.half_width, torso.cy - 0.05 * torso.anterior


def paint_hips(canvas: Canvas, anatomy: Anatomy, torso: Torso, tissues: TissueTable) -> None:
    """Acetabular roofs, femoral heads in their sockets, necks, trochanters and shafts."""
    depth = torso.depth
    head_top, head_bottom = anatomy.landmarks["femoral_head"]
    radius = 23.0 * math.sqrt(anatomy.width_scale)
    centre_depth = 0.5 * (head_top + head_bottom)
    for side in (-1, 1):
        hx, hy = hip_centre(anatomy, torso, side)
        if head_top - 25.0 < depth <= head_top + 4.0:
            roof = Blob(hx - side * 4.0, hy, radius + 6.0, radius + 4.0)
            _bone(canvas, roof, roof.grown(-3.5), tissues)
        offset = depth - centre_depth
        if abs(offset) < radius:
            r = math.sqrt(radius * radius - offset * offset)
            medial = math.pi / 2 + side * math.pi / 2
            socket = Arc(hx, hy, r + 6.0, r + 6.0, medial - 1.6, medial + 1.6, 8.0)
            _bone(canvas, socket, None, tissues)
            head = Blob(hx, hy, r, r)
            _bone(canvas, head, head.grown(-2.0), tissues)
        trochanter_x, trochanter_y = hx + side * 48.0, hy + 8.0
        if centre_depth < depth < head_bottom + 30.0:
            _bone(
                canvas,
                Capsule(hx, hy, trochanter_x, trochanter_y, 13.0),
                Capsule(hx, hy, trochanter_x, trochanter_y, 10.5),
                tissues,
            )
        if head_bottom - 5.0 < depth < head_bottom + 45.0:
            trochanter = Blob(trochanter_x, trochanter_y, 17.0, 21.0)
            _bone(canvas, trochanter, trochanter.grown(-2.5), tissues)
        if depth > head_bottom + 35.0:
            shaft = Blob(hx + side * 38.0, hy + 6.0, 14.0, 14.0)
            _bone(canvas, shaft, shaft.grown(-5.0), tissues, marrow_hu=tissues.fat + 40.0)


def paint_pubis_and_ischium(canvas: Canvas, anatomy: Anatomy, torso: Torso, tissues: TissueTable) -> None:
    depth = torso.depth
    t = _fraction(anatomy, "pubis", depth)
    front_y = torso.cy - torso.anterior + torso.fat[1] + torso.muscle[1] + 10.0
    if t is not None:
        for side in (-1, 1):
            hx, hy = hip_centre(anatomy, torso, side)
            start_x = hx - side * 22.0
            end_x = torso.cx + side * (4.0 + 12.0 * t)
            _bone(
                canvas,
                Capsule(start_x, hy - 10.0, end_x, front_y, 9.0),
                Capsule(start_x, hy - 10.0, end_x, front_y, 6.5),
                tissues,
            )
    t = _fraction(anatomy, "ischium", depth)
    if t is not None:
        for side in (-1, 1):
            hx, hy = hip_centre(anatomy, torso, side)
            ischium = Blob(
                hx - side * (18.0 + 6.0 * t), hy + 32.0 + 12.0 * t, 13.0 + 6.0 * t, 20.0, angle=side * 0.4
            )
            _bone(canvas, ischium, ischium.grown(-3.0), tissues)
