"""Pelvic soft tissues: bladder, uterus or prostate, and the muscles lining the pelvic walls."""

from __future__ import annotations

import math

from fsd.data.synth.anatomy import Anatomy
from fsd.data.synth.body_wall import Torso
from fsd.data.synth.canvas import Canvas
from fsd.data.synth.geometry import Arc, Blob, Wobble, ellipsoid_profile
from fsd.data.synth.pelvic_bones import hip_centre
from fsd.data.synth.tissues import Region, TissueTable


def paint_pelvic_organs(canvas: Canvas, anatomy: Anatomy, torso: Torso, tissues: TissueTable) -> None:
    depth = torso.depth
    fat_regions = (Region.PELVIC_FAT, Region.ABDOMEN_FAT, Region.BOWEL)
    _, _, size = anatomy.jitter("bladder")
    fill = anatomy.bladder_fill
    profile = ellipsoid_profile(
        depth, anatomy.top("bladder") + 40.0 * (1.0 - fill), anatomy.bottom("bladder")
    )
    if profile > 0:
        x, y = torso.point(0.0, -0.45)
        bladder = Blob(
            x,
            y,
            (35.0 + 25.0 * fill) * size * profile + 1.0,
            (28.0 + 20.0 * fill) * size * profile + 1.0,
            power=2.3,
            wobble=Wobble(((2, 0.04, 0.0),)),
        )
        canvas.paint(bladder, tissues.muscle, Region.BLADDER, only=fat_regions)
        canvas.paint(
            bladder.grown(-3.0), tissues.bladder, Region.BLADDER, texture_hu=3.0, only=(Region.BLADDER,)
        )
    organ = "uterus" if anatomy.sex == "F" else "prostate"
    profile = ellipsoid_profile(depth, *anatomy.landmarks[organ])
    if profile > 0:
        if organ == "uterus":
            x, y = torso.point(0.05, 0.05)
            shape = Blob(x, y, 38.0 * profile + 1.0, 26.0 * profile + 1.0, angle=0.2)
            canvas.paint(shape, tissues.uterus, Region.PELVIC_ORGAN, texture_hu=10.0, only=fat_regions)
        else:
            x, y = torso.point(0.0, -0.1)
            shape = Blob(x, y, 21.0 * profile + 1.0, 17.0 * profile + 1.0)
            canvas.paint(shape, tissues.prostate, Region.PELVIC_ORGAN, texture_hu=10.0, only=fat_regions)
    top, bottom = anatomy.landmarks["femoral_head"]
    if top - 20.0 < depth < bottom + 40.0:
        # obturator internus lining the inner side of each acetabulum
        for side in (-1, 1):
            cx, cy = hip_centre(anatomy, torso, side)
            centre = math.pi / 2 + side * math.pi / 2
            canvas.paint(
                Arc(cx, cy, 42.0, 40.0, centre - 1.2, centre + 1.2, 14.0),
                tissues.muscle,
                Region.MUSCLE,
                texture_hu=6.0,
                only=fat_regions,
            )
