"""A synthetic patient's studies and series: what each CT series covers and how it was acquired.

Each patient's randomness comes from ``SeedSequence(seed, spawn_key=(1, patient))``, so patient
``k`` is the same whatever the number of patients generated.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from fsd.data.synth.anatomy import Anatomy, sample_anatomy
from fsd.data.synth.scanner import ScannerSettings
from fsd.data.synth.scene import SceneSettings
from fsd.data.synth.tissues import Phase

MAX_SLICES = 999  # slice numbers have three digits in DeepLesion's layout
_INTERVALS = (1.0, 1.25, 2.0, 2.5, 3.0, 5.0)
_INTERVAL_WEIGHTS = (0.2, 0.1, 0.05, 0.25, 0.05, 0.35)
_COVERAGES = ("CHEST", "ABDOMEN", "ABDOMENPELVIS", "CHESTABDPELVIS", "PELVIS")
_COVERAGE_WEIGHTS = (0.2, 0.2, 0.25, 0.3, 0.05)
_FIRST_DATE = dt.date(2004, 1, 1)


def patient_seed(seed: int, patient: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=(1, patient))


def slice_seed(
    seed: int, patient: int, study: int, series: int, index: int, purpose: int
) -> np.random.SeedSequence:
    """Seed of one slice's texture (purpose 0) or noise (purpose 1), independent of generation order."""
    return np.random.SeedSequence(seed, spawn_key=(3, patient, study, series, index, purpose))


@dataclass(frozen=True)
class SeriesPlan:
    """One CT series: its place in the patient, z coverage, pixel grid and acquisition settings."""

    patient: int
    study: int
    series: int
    first_depth: float  # mm below the thoracic inlet of slice 1
    interval: float  # mm between slices
    slices: int
    size: int
    spacing: float  # mm per pixel
    body_part: str
    scene: SceneSettings
    scanner: ScannerSettings
    study_date: dt.date
    age: int

    @property
    def folder(self) -> str:
        return f"{self.patient:06d}_{self.study:02d}_{self.series:02d}"

    @property
    def last_depth(self) -> float:
        return self.depth_of(self.slices)

    def depth_of(self, index: int) -> float:
        """Depth (mm) of a 1-based slice index."""
        return self.first_depth + (index - 1) * self.interval

    def index_of(self, depth: float) -> int:
        """Nearest 1-based slice index of a depth, within the series."""
        return int(min(max(round((depth - self.first_depth) / self.interval) + 1, 1), self.slices))


@dataclass(frozen=True)
class PatientPlan:
    index: int
    anatomy: Anatomy
    series: tuple[SeriesPlan, ...]


def _coverage(anatomy: Anatomy, name: str, rng: np.random.Generator) -> tuple[float, float]:
    lm = anatomy.landmarks
    chest_top = lm["lung"][0] - 25.0
    abdomen_top = lm["right_dome"][0] - 25.0
    pelvis_bottom = lm["ischium"][1]
    bounds = {
        "CHEST": (chest_top, lm["liver"][0] + 50.0),
        "ABDOMEN": (abdomen_top, lm["iliac_wing"][0] + 40.0),
        "ABDOMENPELVIS": (abdomen_top, pelvis_bottom),
        "CHESTABDPELVIS": (chest_top, pelvis_bottom),
        "PELVIS": (lm["iliac_wing"][0] - 30.0, pelvis_bottom),
    }[name]
    body_top, body_bottom = lm["body"]
    top = max(bounds[0] + rng.normal(0.0, 8.0), body_top)
    bottom = min(bounds[1] + rng.normal(0.0, 8.0), body_bottom)
    return top, bottom


def _series(
    rng: np.random.Generator,
    anatomy: Anatomy,
    patient: int,
    study: int,
    series: int,
    size: int,
    date: dt.date,
    age: int,
) -> SeriesPlan:
    body_part = str(rng.choice(_COVERAGES, p=_COVERAGE_WEIGHTS))
    top, bottom = _coverage(anatomy, body_part, rng)
    interval = float(rng.choice(_INTERVALS, p=_INTERVAL_WEIGHTS))
    slices = min(int(math.floor((bottom - top) / interval)) + 1, MAX_SLICES)
    # field of view: usually wide enough for the body, sometimes a tight one that clips the sides
    spacing_512 = rng.uniform(0.62, 0.98)
    if rng.random() < 0.85:
        spacing_512 = max(spacing_512, (2.0 * anatomy.max_half_width(top, bottom) + 30.0) / 512.0)
    spacing = float(f"{min(spacing_512, 1.0) * 512.0 / size:.6g}")
    phase = Phase(rng.choice([p.value for p in Phase], p=[0.2, 0.2, 0.6]))
    scene = SceneSettings(
        phase=phase,
        offset=(rng.normal(0.0, 6.0), rng.uniform(-5.0, 25.0)),
        table_gap=rng.uniform(0.0, 4.0),
        slice_thickness=interval,
    )
    padding = rng.choice([0, -2048, -3024], p=[0.6, 0.25, 0.15])
    scanner = ScannerSettings(
        noise_sd=float(np.clip(rng.uniform(10.0, 21.0) * (1.0 + anatomy.fat_mm / 100.0), 10.0, 25.0)),
        blur_mm=rng.uniform(0.3, 0.6),
        padding_hu=int(padding) if padding else None,
    )
    return SeriesPlan(
        patient, study, series, top, interval, slices, size, spacing, body_part, scene, scanner, date, age
    )


def plan_patient(seed: int, patient: int, size: int) -> tuple[PatientPlan, np.random.Generator]:
    """The patient's body and series, plus a generator for the rest of the patient's randomness."""
    anatomy_seed, series_seed, lesion_seed = patient_seed(seed, patient).spawn(3)
    anatomy = sample_anatomy(np.random.default_rng(anatomy_seed))
    rng = np.random.default_rng(series_seed)
    studies = int(rng.choice([1, 2, 3], p=[0.6, 0.28, 0.12]))
    first = _FIRST_DATE + dt.timedelta(days=int(rng.integers(0, 12 * 365)))
    date = first
    plans: list[SeriesPlan] = []
    for study in range(1, studies + 1):
        age = anatomy.age + int((date - first).days // 365.25)
        for series in range(1, int(rng.choice([1, 2], p=[0.85, 0.15])) + 1):
            plans.append(_series(rng, anatomy, patient, study, series, size, date, age))
        date = date + dt.timedelta(days=int(rng.integers(60, 400)))
    return PatientPlan(patient, anatomy, tuple(plans)), np.random.default_rng(lesion_seed)
