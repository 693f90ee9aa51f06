"""The spine: vertebral bodies and discs, the posterior arch, the spinal canal, paraspinal muscles.

:func:`spine_frame` also anchors the retroperitoneal organs (aorta, kidneys, psoas) to the spine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fsd.data.synth.anatomy import Anatomy
from fsd.data.synth.body_wall import Torso
from fsd.data.synth.canvas import Canvas
from fsd.data.synth.geometry import Blob, Capsule, Wobble, smooth_step
from fsd.data.synth.tissues import Region, TissueTable


@dataclass(frozen=True)
class SpineFrame:
    """Where the vertebral column is at one level (mm)."""

    x: float
    y: float  # centre of the vertebral body
    half_width: float
    half_depth: float
    canal_y: float
    canal_radius: float


def spine_frame(anatomy: Anatomy, torso: Torso) -> SpineFrame:
    top = anatomy.top("spine")
    bottom = anatomy.bottom("sacrum")
    t = min(max((torso.depth - top) / (bottom - top), 0.0), 1.0)
    size = math.sqrt(anatomy.width_scale)
    half_width = (13.0 + 13.0 * t) * size
    half_depth = (10.0 + 7.0 * t) * size
    canal_radius = 7.5 + 1.0 * t
    canal_y = torso.back_y - torso.fat[2] - 0.78 * torso.muscle[2]
    y = canal_y - canal_radius - 3.0 - half_depth
    return SpineFrame(torso.cx, y, half_width, half_depth, canal_y, canal_radius)


def paint_paraspinal_muscles(canvas: Canvas, frame: SpineFrame, torso: Torso, tissues: TissueTable) -> None:
    half = 0.5 * torso.muscle[2]
    for side in (-1, 1):
        muscle = Blob(
            frame.x + side * (frame.half_width + 10.0),
            frame.canal_y + 0.3 * half,
            frame.half_width + 12.0,
            half + 8.0,
        )
        canvas.paint(muscle, tissues.muscle + 5.0, Region.MUSCLE, texture_hu=6.0)


def _paint_bone(
    canvas: Canvas, outer: Blob, cortex_mm: float, tissues: TissueTable, marrow_hu: float | None = None
) -> None:
    """A bone cross-section: a cortical rim around trabecular marrow."""
    canvas.paint(outer, tissues.cortical_bone, Region.CORTICAL_BONE, texture_hu=60.0)
    inner = Blob(
        outer.cx,
        outer.cy,
        max(outer.a - cortex_mm, 0.5),
        max(outer.b - cortex_mm, 0.5),
        outer.angle,
        outer.power,
        outer.wobble,
    )
    canvas.paint(inner, tissues.marrow if marrow_hu is None else marrow_hu, Region.MARROW, texture_hu=55.0)


def paint_spine(canvas: Canvas, anatomy: Anatomy, torso: Torso, tissues: TissueTable) -> None:
    """Vertebral body or disc, pedicles, lamina, spinous and transverse processes, canal."""
    depth = torso.depth
    if not anatomy.top("spine") < depth < anatomy.top("sacrum") + 5.0:
        return
    frame = spine_frame(anatomy, torso)
    vertebra = anatomy.vertebra_at(depth)
    arch_y = frame.canal_y
    thoracic = depth < anatomy.top("spine") + 0.7 * (anatomy.top("sacrum") - anatomy.top("spine"))
    bone = tissues.cortical_bone - 250.0
    position = vertebra[1] if vertebra is not None else None
    canal_r = frame.canal_radius
    back_of_canal = arch_y + canal_r + 3.0
    for side in (-1, 1):
        # pedicle from the body to the side of the canal, lamina from there round the back
        root_x, root_y = frame.x + side * (canal_r + 2.5), arch_y - 1.0
        canvas.paint(
            Capsule(
                frame.x + side * 0.55 * frame.half_width,
                frame.y + 0.7 * frame.half_depth,
                root_x,
                root_y,
                3.8,
            ),
            bone,
            Region.CORTICAL_BONE,
            texture_hu=60.0,
        )
        canvas.paint(
            Capsule(root_x, root_y, frame.x, back_of_canal, 3.0), bone, Region.CORTICAL_BONE, texture_hu=60.0
        )
        if position is not None and 0.15 < position < 0.55:
            reach = 15.0 if thoracic else 21.0
            tip_y = root_y + (9.0 if thoracic else 3.0)
            radius = 3.4 if thoracic else 2.6
            canvas.paint(
                Capsule(root_x, root_y, root_x + side * reach, tip_y, radius),
                bone,
                Region.CORTICAL_BONE,
                texture_hu=60.0,
            )
    if position is not None and position > 0.3:
        spinous_end = torso.back_y - torso.fat[2] - 8.0
        canvas.paint(
            Capsule(frame.x, back_of_canal, frame.x, spinous_end, 3.2),
            bone,
            Region.CORTICAL_BONE,
            texture_hu=60.0,
        )
    canvas.paint(Blob(frame.x, arch_y, canal_r, canal_r * 0.95), tissues.csf, Region.SPINAL_CANAL)
    if depth < anatomy.top("spine") + 0.85 * (anatomy.top("sacrum") - anatomy.top("spine")):
        canvas.paint(
            Blob(frame.x, arch_y - 0.5, 0.55 * canal_r, 0.45 * canal_r), tissues.cord, Region.SPINAL_CANAL
        )
    # vertebral body or disc
    shape = Wobble(((2, 0.04, 0.0),))
    outer = Blob(frame.x, frame.y, frame.half_width, frame.half_depth, power=2.3, wobble=shape)
    if vertebra is None:
        canvas.paint(outer, tissues.disc, Region.CARTILAGE, texture_hu=5.0)
        canvas.paint(outer.scaled(0.55), tissues.disc - 15.0, Region.CARTILAGE, texture_hu=5.0)
        return
    position = vertebra[1]
    endplate = min(position, 1.0 - position) < 0.08
    cortex = 2.2 if not endplate else frame.half_depth
    _paint_bone(
        canvas, outer, cortex, tissues, tissues.marrow + 60.0 * (1.0 - smooth_step(anatomy.age, 40, 85))
    )
    # basivertebral vein: a small dark notch at the back of the body
    canvas.paint(Blob(frame.x, frame.y + 0.6 * frame.half_depth, 3.0, 2.0), tissues.blood, Region.MARROW)
    for island_depth, du, dv, radius in anatomy.bone_islands:
        offset = abs(depth - island_depth)
        if offset < radius:
            r = math.sqrt(radius * radius - offset * offset)
            canvas.paint(
                Blob(frame.x + du * frame.half_width * 0.7, frame.y + dv * frame.half_depth * 0.7, r, r),
                1100.0,
                Region.MARROW,
            )
