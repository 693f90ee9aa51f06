"""The diaphragm's domes: which part of the body cavity is abdomen at a given level.

Above the domes the cavity is chest (lungs, mediastinum); below them it is abdomen. Near the
domes a slice shows the liver (right) and stomach/spleen (left) surrounded by lung bases, because
each dome's cross-section grows like the cap of an ellipsoid as the slice moves down.
"""

from __future__ import annotations

from fsd.data.synth.anatomy import Anatomy
from fsd.data.synth.body_wall import Torso
from fsd.data.synth.geometry import Blob, Intersection, Shape, Union


def dome_fraction(depth: float, apex: float, full: float) -> float:
    """Relative dome cross-section size: 0 at the apex, growing to 1 at ``full``."""
    if depth <= apex:
        return 0.0
    if depth >= full:
        return 1.0
    return ((depth - apex) / (full - apex)) ** 0.75


def abdominal_part(anatomy: Anatomy, torso: Torso) -> Shape | None:
    """The part of the cavity below the diaphragm at this level (None when all chest)."""
    depth = torso.depth
    if depth >= anatomy.bottom("lung"):
        return torso.cavity()
    a, front, back = torso.cavity_half_axes
    parts: list[Shape] = []
    for side, name in ((-1, "right_dome"), (1, "left_dome")):
        apex, full = anatomy.landmarks[name]
        fraction = dome_fraction(depth, apex, full)
        if fraction <= 0.0:
            continue
        # centred in front of the middle, so the lung bases stay longest at the back
        x, y = torso.point(side * 0.3, -0.3)
        parts.append(
            Blob(x, y, 0.95 * a * fraction + 1.0, 1.2 * 0.5 * (front + back) * fraction + 1.0, power=2.2)
        )
    if not parts:
        return None
    return Intersection([Union(parts), torso.cavity()])
