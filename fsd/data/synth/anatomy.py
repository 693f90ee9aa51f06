"""A synthetic patient's anatomy: body size and shape along z, organ levels, skeleton, tubes.

Depth ``d`` (mm) runs from the thoracic inlet (0) towards the feet. Every organ has a depth range
(its top and bottom); cross-sections grow and shrink smoothly inside that range. All randomness of
a patient's body is drawn here once, so every slice of every series of that patient agrees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fsd.data.synth.geometry import Wobble
from fsd.data.synth.tubes import Segment, Tube, path_tube, random_walk_tube, vessel_tree

#: Depth ranges (top, bottom) in mm of an average adult; scaled and jittered per patient.
BASE_LANDMARKS: dict[str, tuple[float, float]] = {
    "body": (-60.0, 690.0),
    "lung": (-25.0, 275.0),
    "trachea": (-60.0, 80.0),
    "clavicle": (-45.0, -5.0),
    "scapula": (-40.0, 110.0),
    "sternum": (5.0, 205.0),
    "aortic_arch": (38.0, 62.0),
    "ascending_aorta": (55.0, 130.0),
    "pulmonary_trunk": (78.0, 118.0),
    "svc": (-10.0, 110.0),
    "heart": (100.0, 228.0),
    "breast": (40.0, 180.0),
    "right_dome": (190.0, 280.0),
    "left_dome": (212.0, 290.0),
    "liver": (190.0, 370.0),
    "liver_left_lobe": (205.0, 300.0),
    "spleen": (215.0, 320.0),
    "stomach": (205.0, 310.0),
    "pancreas": (288.0, 330.0),
    "gallbladder": (295.0, 348.0),
    "right_kidney": (300.0, 420.0),
    "left_kidney": (285.0, 405.0),
    "descending_aorta": (50.0, 445.0),
    "ivc": (195.0, 450.0),
    "iliac_vessels": (445.0, 640.0),
    "psoas": (320.0, 620.0),
    "spine": (-60.0, 440.0),
    "sacrum": (440.0, 585.0),
    "iliac_wing": (425.0, 565.0),
    "femoral_head": (565.0, 615.0),
    "femur": (600.0, 690.0),
    "pubis": (600.0, 650.0),
    "ischium": (598.0, 668.0),
    "bladder": (540.0, 640.0),
    "uterus": (515.0, 585.0),
    "prostate": (615.0, 652.0),
    "rectum": (545.0, 680.0),
    "small_bowel": (320.0, 565.0),
    "pelvis": (470.0, 690.0),
}

#: Body half width, anterior and posterior half depths (mm) at a given depth, average adult.
BODY_PROFILE = np.array(
    [
        # depth, half width, anterior half depth, posterior half depth
        [-60.0, 120.0, 70.0, 70.0],
        [-20.0, 145.0, 92.0, 88.0],
        [40.0, 160.0, 105.0, 100.0],
        [150.0, 165.0, 112.0, 105.0],
        [250.0, 160.0, 118.0, 105.0],
        [350.0, 155.0, 120.0, 102.0],
        [450.0, 162.0, 115.0, 100.0],
        [550.0, 178.0, 108.0, 102.0],
        [650.0, 178.0, 104.0, 100.0],
        [720.0, 170.0, 100.0, 96.0],
    ],
    dtype=float,
)


@dataclass(frozen=True)
class Rib:
    """One rib: depth where it leaves the spine, how far it drops towards the front, and how far
    round the body it reaches (angle from the back, pi = front midline)."""

    side: int  # -1 right, +1 left
    origin: float
    drop: float
    bone_end: float
    cartilage_end: float


@dataclass(frozen=True)
class Anatomy:
    """Everything that makes one patient's body; see the module docstring."""

    sex: str
    age: int
    landmarks: dict[str, tuple[float, float]]
    width_scale: float
    ap_scale: float
    fat_mm: float
    muscle_scale: float
    outline: Wobble
    organ_jitter: dict[str, tuple[float, float, float]]
    vertebrae: tuple[tuple[float, float], ...]
    ribs: tuple[Rib, ...]
    tubes: tuple[Tube, ...]
    bone_islands: tuple[tuple[float, float, float, float], ...]
    oral_contrast: bool
    bladder_fill: float
    calcified_cartilage: bool
    height_scale: float

    def top(self, name: str) -> float:
        return self.landmarks[name][0]

    def bottom(self, name: str) -> float:
        return self.landmarks[name][1]

    def spans(self, name: str, depth: float) -> bool:
        top, bottom = self.landmarks[name]
        return top < depth < bottom

    def jitter(self, name: str) -> tuple[float, float, float]:
        """(du, dv, size factor) of an organ."""
        return self.organ_jitter.get(name, (0.0, 0.0, 1.0))

    def body_size(self, depth: float) -> tuple[float, float, float]:
        """Half width, anterior and posterior half depths (mm) of the skin outline."""
        scaled = depth / self.height_scale
        half_width = float(np.interp(scaled, BODY_PROFILE[:, 0], BODY_PROFILE[:, 1]))
        anterior = float(np.interp(scaled, BODY_PROFILE[:, 0], BODY_PROFILE[:, 2]))
        posterior = float(np.interp(scaled, BODY_PROFILE[:, 0], BODY_PROFILE[:, 3]))
        fat_gain = 0.8 * self.fat_mm
        return (
            half_width * self.width_scale + fat_gain,
            anterior * self.ap_scale + 1.2 * fat_gain,
            posterior * self.ap_scale + 0.5 * fat_gain,
        )

    def max_half_width(self, top: float, bottom: float) -> float:
        return max(self.body_size(d)[0] for d in np.linspace(top, bottom, 24))

    def vertebra_at(self, depth: float) -> tuple[int, float] | None:
        """(index, relative position 0..1 inside the body) of the vertebra at ``depth``; None in a
        disc space or outside the spine."""
        for index, (top, bottom) in enumerate(self.vertebrae):
            if top <= depth <= bottom:
                return index, (depth - top) / (bottom - top)
        return None


def _landmarks(rng: np.random.Generator, height_scale: float) -> dict[str, tuple[float, float]]:
    result: dict[str, tuple[float, float]] = {}
    for name, (top, bottom) in BASE_LANDMARKS.items():
        shift = rng.normal(0.0, 4.0)
        length = (bottom - top) * rng.uniform(0.93, 1.07)
        centre = 0.5 * (top + bottom) * height_scale + shift
        result[name] = (centre - 0.5 * length * height_scale, centre + 0.5 * length * height_scale)
    result["body"] = (BASE_LANDMARKS["body"][0] * height_scale, BASE_LANDMARKS["body"][1] * height_scale)
    return result


def _vertebrae(landmarks: dict[str, tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """Vertebral bodies from L5 up to C6: lumbar ones tall with thick discs, thoracic ones smaller."""
    sacrum_top = landmarks["sacrum"][0]
    inlet = landmarks["lung"][0] + 10.0
    levels: list[tuple[float, float]] = []
    bottom = sacrum_top - 10.0
    for _ in range(5):
        top = bottom - 28.0
        levels.append((top, bottom))
        bottom = top - 9.0
    thoracic_pitch = (bottom - inlet) / 12.0
    for index in range(12):
        pitch = thoracic_pitch * (1.12 - 0.02 * index)
        disc = 0.2 * pitch
        top = bottom - (pitch - disc)
        levels.append((top, bottom))
        bottom = top - disc
    for _ in range(3):
        top = bottom - 14.0
        levels.append((top, bottom))
        bottom = top - 4.0
    return tuple(sorted(levels))


def _ribs(rng: np.random.Generator, vertebrae: tuple[tuple[float, float], ...]) -> tuple[Rib, ...]:
    """Twelve pairs, each leaving its thoracic vertebra and sloping down towards the front."""
    thoracic = vertebrae[3:15]  # after the three cervical bodies (sorted top to bottom)
    ribs: list[Rib] = []
    for number, (top, bottom) in enumerate(thoracic, start=1):
        for side in (-1, 1):
            drop = (70.0 + 8.0 * min(number, 6)) * rng.uniform(0.9, 1.1)
            if number <= 7:
                bone_end, cartilage_end = 0.78 * math.pi, 0.95 * math.pi
            elif number <= 10:
                bone_end, cartilage_end = 0.70 * math.pi, 0.85 * math.pi
            else:
                bone_end, cartilage_end = (0.42 + 0.04 * (12 - number)) * math.pi, 0.0
            ribs.append(Rib(side, 0.5 * (top + bottom) - 4.0, drop, bone_end, cartilage_end))
    return tuple(ribs)


def _lung_vessels(rng: np.random.Generator, landmarks: dict[str, tuple[float, float]]) -> list[Tube]:
    """Pulmonary vessels: many short pieces pointing away from the hilum, thick centrally and thin
    towards the periphery, so every slice shows dots and short branches all over the lungs."""
    hilum_depth = landmarks["pulmonary_trunk"][1] + 5.0
    top, bottom = landmarks["lung"]
    depth_scale = 150.0
    tubes: list[Tube] = []
    for side in (-1, 1):
        hilum = np.array([side * 0.3, 0.05, hilum_depth / depth_scale])
        count = 2400
        points = np.stack(
            [
                side * rng.uniform(0.05, 1.0, count),
                rng.uniform(-1.0, 1.0, count),
                rng.uniform(top, bottom, count) / depth_scale,
            ],
            axis=1,
        )
        away = points - hilum
        distance = np.linalg.norm(away, axis=1)
        heading = away / distance[:, None] + rng.normal(0.0, 0.35, (count, 3))
        heading /= np.linalg.norm(heading, axis=1)[:, None]
        lengths = rng.uniform(0.06, 0.16, count)
        radii = 0.7 + 4.2 * np.clip(1.0 - distance / 0.85, 0.0, 1.0) ** 1.6
        segments = []
        for point, direction, length, radius in zip(points, heading, lengths, radii):
            a = point - 0.5 * length * direction
            b = point + 0.5 * length * direction
            segments.append(
                Segment(
                    (a[0], a[1], a[2] * depth_scale),
                    (b[0], b[1], b[2] * depth_scale),
                    float(radius * rng.uniform(0.8, 1.2)),
                )
            )
        tubes.append(Tube(tuple(segments), "lung_vessel"))
    return tubes


def _liver_vessels(rng: np.random.Generator, landmarks: dict[str, tuple[float, float]]) -> list[Tube]:
    top, bottom = landmarks["liver"]
    porta = (-0.2, -0.05, top + 0.55 * (bottom - top))
    tubes: list[Tube] = []
    for direction in [(-1.0, 0.0, -0.4), (-0.6, -0.7, -0.3), (-0.7, 0.5, 0.3), (0.5, -0.6, -0.5)]:
        segments = vessel_tree(
            rng, porta, direction, radius=5.0, length=0.28, generations=4, depth_scale=120.0
        )
        tubes.append(Tube(tuple(segments), "liver_vessel"))
    confluence = (-0.08, 0.25, top + 20.0)
    for direction in [(-1.0, -0.3, 0.6), (-0.3, -1.0, 0.5), (0.6, -0.8, 0.4)]:
        segments = vessel_tree(
            rng, confluence, direction, radius=5.5, length=0.3, generations=3, depth_scale=120.0
        )
        tubes.append(Tube(tuple(segments), "liver_vessel"))
    return tubes


def _bowel(
    rng: np.random.Generator, landmarks: dict[str, tuple[float, float]], oral_contrast: bool
) -> list[Tube]:
    top, bottom = landmarks["small_bowel"]
    tubes: list[Tube] = []
    contents_choices = ["fluid", "gas", "mixed", "contrast" if oral_contrast else "fluid"]
    for _ in range(int(rng.integers(50, 70))):
        start = (rng.uniform(-0.6, 0.6), rng.uniform(-0.8, 0.2), rng.uniform(top + 5, bottom - 5))
        contents = str(rng.choice(contents_choices, p=[0.35, 0.15, 0.3, 0.2]))
        segments = random_walk_tube(
            rng,
            start,
            steps=int(rng.integers(10, 16)),
            step_uv=0.09,
            step_depth=5.0,
            box=(-0.7, 0.7, -0.9, 0.3, top, bottom),
            radius=rng.uniform(9.0, 14.0),
        )
        level = {"gas": 1.0, "mixed": rng.uniform(-0.5, 0.3)}.get(contents, -1.0)
        tubes.append(Tube(segments, "small_bowel", "fluid" if contents == "mixed" else contents, level))
    liver_bottom = landmarks["liver"][1]
    kidney_top = landmarks["left_kidney"][0]
    rectum_top, rectum_bottom = landmarks["rectum"]
    course = [
        (-0.62, -0.05, bottom - 15.0),
        (-0.68, 0.05, liver_bottom - 10.0),
        (-0.5, -0.35, liver_bottom - 30.0),
        (0.0, -0.68, liver_bottom - 20.0),
        (0.6, -0.25, kidney_top + 5.0),
        (0.72, 0.1, kidney_top + 60.0),
        (0.7, 0.0, bottom - 40.0),
        (0.35, -0.35, rectum_top - 20.0),
        (-0.05, -0.15, rectum_top + 10.0),
        (0.0, 0.55, rectum_top + 35.0),
        (0.0, 0.6, rectum_bottom),
    ]
    jittered = [
        (u + rng.normal(0, 0.03), v + rng.normal(0, 0.03), d + rng.normal(0, 5.0)) for u, v, d in course
    ]
    tubes.append(Tube(path_tube(jittered, rng.uniform(17.0, 24.0)), "colon", "stool", rng.uniform(-0.8, 0.2)))
    return tubes


def sample_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draw one patient's body."""
    sex = "F" if rng.random() < 0.5 else "M"
    age = int(np.clip(rng.normal(55.0, 15.0), 18, 92))
    height_scale = rng.uniform(0.9, 1.08) * (0.95 if sex == "F" else 1.0)
    landmarks = _landmarks(rng, height_scale)
    vertebrae = _vertebrae(landmarks)
    oral_contrast = bool(rng.random() < 0.3)
    organ_names = ["liver", "spleen", "stomach", "heart", "kidney", "bladder", "mediastinum", "pancreas"]
    jitter = {
        name: (rng.normal(0.0, 0.04), rng.normal(0.0, 0.04), float(np.clip(rng.normal(1.0, 0.08), 0.8, 1.2)))
        for name in organ_names
    }
    harmonics = tuple((k, rng.uniform(0.0, 0.025), rng.uniform(0, 2 * math.pi)) for k in (2, 3, 4))
    tubes = (
        _lung_vessels(rng, landmarks) + _liver_vessels(rng, landmarks) + _bowel(rng, landmarks, oral_contrast)
    )
    islands = tuple(
        (
            rng.uniform(landmarks["spine"][0] + 40, landmarks["sacrum"][1]),
            rng.uniform(-0.6, 0.6),
            rng.uniform(-0.6, 0.6),
            rng.uniform(1.5, 3.5),
        )
        for _ in range(int(rng.integers(0, 4)))
    )
    return Anatomy(
        sex=sex,
        age=age,
        landmarks=landmarks,
        width_scale=rng.uniform(0.86, 1.12) * (0.94 if sex == "F" else 1.0),
        ap_scale=rng.uniform(0.85, 1.12),
        fat_mm=float(np.clip(rng.gamma(3.0, 6.0), 3.0, 55.0)),
        muscle_scale=rng.uniform(0.75, 1.25) * (0.85 if sex == "F" else 1.0) * (0.8 if age > 75 else 1.0),
        outline=Wobble(harmonics),
        organ_jitter=jitter,
        vertebrae=vertebrae,
        ribs=_ribs(rng, vertebrae),
        tubes=tuple(tubes),
        bone_islands=islands,
        oral_contrast=oral_contrast,
        bladder_fill=rng.uniform(0.35, 1.0),
        calcified_cartilage=bool(age > 60 and rng.random() < 0.6),
        height_scale=height_scale,
    )
