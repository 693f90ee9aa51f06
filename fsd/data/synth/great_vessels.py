"""The aorta (arch, descending, abdominal), the inferior vena cava and the iliac/femoral vessels.

They run along z beside the spine, so every slice cuts them as round discs in slowly shifting
places: the classic look-alike of a lymph node on a single slice.
"""

from __future__ import annotations

from fsd.data.synth.anatomy import Anatomy
from fsd.data.synth.body_wall import Torso
from fsd.data.synth.canvas import Canvas
from fsd.data.synth.geometry import Blob, Capsule, smooth_step
from fsd.data.synth.spine import SpineFrame
from fsd.data.synth.tissues import Region, TissueTable


def paint_great_vessels(
    canvas: Canvas, anatomy: Anatomy, torso: Torso, frame: SpineFrame, tissues: TissueTable
) -> None:
    depth = torso.depth
    _, front, _ = torso.cavity_half_axes
    arch_top, arch_bottom = anatomy.landmarks["aortic_arch"]
    aorta_top, bifurcation = anatomy.landmarks["descending_aorta"]
    t_belly = smooth_step(depth, anatomy.top("left_dome"), anatomy.top("left_dome") + 70.0)
    dx = frame.x + frame.half_width + 6.0 + t_belly * (10.0 - frame.half_width - 6.0)
    dy = frame.y - 0.35 * frame.half_depth + t_belly * (-0.65 * frame.half_depth - 11.0)
    radius = 12.5 - 2.0 * t_belly
    if arch_top < depth < arch_bottom:
        ax, ay = torso.cx - 8.0, torso.cy - 0.42 * front
        canvas.paint(Capsule(ax, ay, dx, dy, 13.0), tissues.aorta, Region.VESSEL)
    elif max(aorta_top, arch_bottom) <= depth < bifurcation:
        canvas.paint(Blob(dx, dy, radius, radius), tissues.aorta, Region.VESSEL)
    ivc_top, ivc_bottom = anatomy.landmarks["ivc"]
    if ivc_top < depth < ivc_bottom:
        canvas.paint(
            Blob(frame.x - frame.half_width - 4.0, frame.y - frame.half_depth - 10.0, 11.0, 8.5),
            tissues.veins,
            Region.VESSEL,
        )
    iliac_bottom = anatomy.bottom("iliac_vessels")
    if bifurcation <= depth < iliac_bottom:
        t = (depth - bifurcation) / (iliac_bottom - bifurcation)
        for side in (-1, 1):
            end_x, end_y = torso.point(side * 0.62, -0.55)
            x = dx + t * (end_x - dx) + side * 8.0 * (1 - t)
            y = dy + t * (end_y - dy)
            canvas.paint(Blob(x, y, 6.5, 6.5), tissues.aorta, Region.VESSEL)
            canvas.paint(Blob(x - side * 9.0, y + 9.0, 8.0, 7.0), tissues.veins, Region.VESSEL)
