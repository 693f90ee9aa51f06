"""The z of ``Normalized_lesion_location``: a slice's position along the body, anchored to anatomy.

DeepLesion derives z by self-supervised body-part regression (Yan et al.), which scores a slice
by the anatomy it shows, so the same organ gets the same z in every patient whatever part of
the body a scan covers. The generator writes z the same way: a depth is mapped piecewise
linearly through the patient's own landmarks (lung apex, top of the right hemidiaphragm, top of
the iliac wings, bottom of the ischia) onto where those landmarks sit in the reference body
(:data:`~fsd.data.synth.anatomy.BASE_LANDMARKS`, scaled so that the reference body spans
0 .. 1, head end to feet end). A slice at a patient's diaphragm dome has the z of the reference
dome, be the patient tall or short, scanned chest-only or chest to pelvis.
"""

from __future__ import annotations

import numpy as np

from fsd.data.synth.anatomy import BASE_LANDMARKS, Anatomy

#: (landmark, its top (0) or bottom (1) end): the anatomy z is anchored to, head to feet
ANCHORS: tuple[tuple[str, int], ...] = (("lung", 0), ("right_dome", 0), ("iliac_wing", 0), ("ischium", 1))


def _reference_z(depth: float) -> float:
    top, bottom = BASE_LANDMARKS["body"]
    return (depth - top) / (bottom - top)


#: where each anchor lies in the reference body
REFERENCE_Z: tuple[float, ...] = tuple(_reference_z(BASE_LANDMARKS[name][end]) for name, end in ANCHORS)


def body_position(anatomy: Anatomy, depth: float) -> float:
    """z in [0, 1] of a depth (mm) of this patient: the reference body's position of the same
    anatomy (linear between the anchors, extended beyond them with the nearest segment's slope)."""
    anchors = np.array([anatomy.landmarks[name][end] for name, end in ANCHORS])
    reference = np.array(REFERENCE_Z)
    if depth <= anchors[0]:
        segment = 0
    elif depth >= anchors[-1]:
        segment = len(anchors) - 2
    else:
        segment = int(np.searchsorted(anchors, depth, side="right")) - 1
    low, high = anchors[segment], anchors[segment + 1]
    slope = (reference[segment + 1] - reference[segment]) / max(high - low, 1e-6)
    return float(np.clip(reference[segment] + (depth - low) * slope, 0.0, 1.0))
