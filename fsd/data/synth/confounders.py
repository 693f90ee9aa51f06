"""Look-alikes that are not lesions: lung and liver vessels, bowel loops (and, in the spine
painter, bone islands).

On one slice a vessel or a bowel loop is a round blob much like a nodule or a lymph node; across
neighbouring slices it keeps going as a tube while a lesion ends. None of them is annotated.
"""

from __future__ import annotations

import numpy as np

from fsd.data.synth.anatomy import Anatomy
from fsd.data.synth.body_wall import Torso
from fsd.data.synth.canvas import Canvas
from fsd.data.synth.geometry import Capsule, HalfPlane, Intersection
from fsd.data.synth.tissues import Region, TissueTable
from fsd.data.synth.tubes import Tube

_BOWEL_HOSTS = (Region.ABDOMEN_FAT, Region.PELVIC_FAT, Region.BOWEL)


def _cuts(tube: Tube, torso: Torso, half_slab: float) -> np.ndarray:
    """Pieces of the tube inside the slab depth +- half_slab: rows of (x0, y0, x1, y1, radius) mm."""
    low, high = torso.depth - half_slab, torso.depth + half_slab
    top, bottom = tube.depth_range
    if bottom < low or top > high:
        return np.empty((0, 5))
    table = tube.table
    d0, d1 = table[:, 2], table[:, 5]
    rows = table[(np.minimum(d0, d1) <= high) & (np.maximum(d0, d1) >= low)]
    if len(rows) == 0:
        return np.empty((0, 5))
    start, end = rows[:, 0:3], rows[:, 3:6]
    span = end[:, 2] - start[:, 2]
    flat = np.abs(span) < 1e-6
    safe = np.where(flat, 1.0, span)
    t_low, t_high = (low - start[:, 2]) / safe, (high - start[:, 2]) / safe
    t0 = np.where(flat, 0.0, np.clip(np.minimum(t_low, t_high), 0.0, 1.0))
    t1 = np.where(flat, 1.0, np.clip(np.maximum(t_low, t_high), 0.0, 1.0))
    p0 = start + t0[:, None] * (end - start)
    p1 = start + t1[:, None] * (end - start)
    x0, y0 = torso.points(p0[:, 0], p0[:, 1])
    x1, y1 = torso.points(p1[:, 0], p1[:, 1])
    return np.stack([x0, y0, x1, y1, rows[:, 6]], axis=1)


def paint_vessel_trees(
    canvas: Canvas, anatomy: Anatomy, torso: Torso, tissues: TissueTable, half_slab: float
) -> None:
    """Branching vessels inside the lungs and the liver."""
    for tube in anatomy.tubes:
        if tube.kind == "lung_vessel":
            hu, host = tissues.blood, Region.LUNG
        elif tube.kind == "liver_vessel":
            hu, host = tissues.liver_vessels, Region.LIVER
        else:
            continue
        pieces = _cuts(tube, torso, half_slab)
        pieces[:, 4] = np.maximum(pieces[:, 4], 0.6)
        canvas.paint_capsules(pieces, hu, host, texture_hu=4.0, only=(host,))


def _lumen_hu(contents: str, tissues: TissueTable) -> tuple[float, float]:
    """(HU, texture amplitude) of bowel contents."""
    if contents == "gas":
        return tissues.bowel_gas, 10.0
    if contents == "contrast":
        return 260.0, 30.0
    if contents == "stool":
        return -90.0, 95.0
    return tissues.fluid + 8.0, 6.0


def paint_bowel(
    canvas: Canvas, anatomy: Anatomy, torso: Torso, tissues: TissueTable, half_slab: float
) -> None:
    """Small-bowel loops and the colon: a wall, fluid/contrast/stool inside, gas on top."""
    for tube in anatomy.tubes:
        if tube.kind not in ("small_bowel", "colon"):
            continue
        wall = 2.0 if tube.kind == "colon" else 2.5
        lumen_hu, lumen_texture = _lumen_hu(tube.contents, tissues)
        for x0, y0, x1, y1, radius in _cuts(tube, torso, half_slab):
            canvas.paint(
                Capsule(x0, y0, x1, y1, radius),
                tissues.bowel_wall,
                Region.BOWEL,
                texture_hu=5.0,
                only=_BOWEL_HOSTS,
            )
            lumen = Capsule(x0, y0, x1, y1, radius - wall)
            canvas.paint(lumen, lumen_hu, Region.BOWEL, texture_hu=lumen_texture, only=(Region.BOWEL,))
            if tube.gas_level > -1.0:
                level = 0.5 * (y0 + y1) + tube.gas_level * (radius - wall)
                canvas.paint(
                    Intersection([lumen, HalfPlane(level)]),
                    tissues.bowel_gas,
                    Region.BOWEL,
                    texture_hu=10.0,
                    only=(Region.BOWEL,),
                )
