"""Draw the noise-free anatomy of one axial slice, layer by layer, in a sensible painting order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fsd.data.synth import (
    abdomen,
    confounders,
    great_vessels,
    pelvic_bones,
    pelvis,
    spine,
    thoracic_cage,
    thorax,
)
from fsd.data.synth.anatomy import Anatomy
from fsd.data.synth.body_wall import Torso, paint_body_wall, paint_table, torso_at
from fsd.data.synth.canvas import Canvas, smooth_noise
from fsd.data.synth.geometry import Grid
from fsd.data.synth.tissues import TISSUES, Phase, Region


@dataclass(frozen=True)
class SceneSettings:
    """How a series shows the patient: contrast phase, where the body lies, slab thickness."""

    phase: Phase
    offset: tuple[float, float]  # body centre in the image (mm)
    table_gap: float  # mm between the back and the couch
    slice_thickness: float  # mm


@dataclass
class Scene:
    """A drawn slice: HU and tissue labels, plus the body section used to draw it."""

    canvas: Canvas
    torso: Torso


def render_anatomy(
    anatomy: Anatomy, settings: SceneSettings, grid: Grid, depth: float, rng: np.random.Generator
) -> Scene:
    """The patient's anatomy at ``depth`` (mm below the thoracic inlet), without noise."""
    tissues = TISSUES[settings.phase]
    texture = smooth_noise(rng, grid.size, max(0.8, 1.2 / grid.spacing))
    canvas = Canvas.blank(grid, texture, tissues.air)
    torso = torso_at(anatomy, depth, settings.offset)
    half_slab = 0.5 * min(settings.slice_thickness, 3.0)
    paint_table(canvas, torso, settings.table_gap)
    paint_body_wall(canvas, torso, tissues)
    if depth > anatomy.top("pelvis"):
        canvas.region[canvas.region == Region.ABDOMEN_FAT] = Region.PELVIC_FAT
    thorax.paint_breasts(canvas, anatomy, torso, tissues)
    frame = spine.spine_frame(anatomy, torso)
    spine.paint_paraspinal_muscles(canvas, frame, torso, tissues)
    thorax.paint_lungs_and_mediastinum(canvas, anatomy, torso, frame, tissues)
    abdomen.paint_liver(canvas, anatomy, torso, tissues)
    abdomen.paint_spleen(canvas, anatomy, torso, tissues, settings.phase)
    abdomen.paint_stomach(canvas, anatomy, torso, tissues)
    abdomen.paint_pancreas(canvas, anatomy, torso, frame, tissues)
    abdomen.paint_kidneys(canvas, anatomy, torso, frame, tissues)
    abdomen.paint_psoas(canvas, anatomy, torso, frame, tissues)
    thorax.paint_heart(canvas, anatomy, torso, tissues)
    thorax.paint_central_vessels(canvas, anatomy, torso, tissues)
    great_vessels.paint_great_vessels(canvas, anatomy, torso, frame, tissues)
    thorax.paint_airways(canvas, anatomy, torso, frame, tissues)
    pelvis.paint_pelvic_organs(canvas, anatomy, torso, tissues)
    confounders.paint_bowel(canvas, anatomy, torso, tissues, half_slab)
    confounders.paint_vessel_trees(canvas, anatomy, torso, tissues, half_slab)
    thoracic_cage.paint_ribs(canvas, anatomy, torso, tissues)
    thoracic_cage.paint_sternum(canvas, anatomy, torso, tissues)
    thoracic_cage.paint_clavicles(canvas, anatomy, torso, tissues)
    thoracic_cage.paint_scapulae(canvas, anatomy, torso, tissues)
    spine.paint_spine(canvas, anatomy, torso, tissues)
    pelvic_bones.paint_sacrum(canvas, anatomy, torso, tissues)
    pelvic_bones.paint_iliac_wings(canvas, anatomy, torso, tissues)
    pelvic_bones.paint_hips(canvas, anatomy, torso, tissues)
    pelvic_bones.paint_pubis_and_ischium(canvas, anatomy, torso, tissues)
    return Scene(canvas, torso)
