"""The z of Normalized_lesion_location is anchored to anatomy, as DeepLesion's body-part
regression makes it: the same anatomy gets the same z whatever the patient's scan range."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fsd.data.dl_info import read_dl_info
from fsd.data.synth import generate_dataset
from fsd.data.synth.body_position import ANCHORS, REFERENCE_Z, body_position
from fsd.data.synth.lesions import LIVER, LUNG, MEDIASTINUM, PELVIS
from fsd.data.synth.patient import plan_patient

SEED = 13
PATIENTS = 14


def test_each_anchor_has_the_reference_z_in_every_patient():
    for patient in range(1, 30):
        anatomy = plan_patient(SEED, patient, 128)[0].anatomy
        for (name, end), expected in zip(ANCHORS, REFERENCE_Z, strict=True):
            assert body_position(anatomy, anatomy.landmarks[name][end]) == pytest.approx(expected, abs=1e-9)


def test_z_grows_from_head_to_feet_and_stays_in_the_unit_interval():
    anatomy = plan_patient(SEED, 1, 128)[0].anatomy
    depths = np.linspace(anatomy.landmarks["body"][0] - 50, anatomy.landmarks["body"][1] + 50, 200)
    values = np.array([body_position(anatomy, float(d)) for d in depths])
    assert np.all(np.diff(values) >= 0) and values.min() >= 0.0 and values.max() <= 1.0
    assert values[0] == 0.0 and values[-1] == 1.0


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("position") / "set"
    generate_dataset(root, patients=PATIENTS, size=128, seed=SEED, type_all=True, progress=False)
    return root


def test_written_z_is_the_anatomical_position_of_the_key_slice_whatever_the_scan_range(generated: Path):
    records = read_dl_info(generated / "DL_info.csv")
    coverages: set[tuple[float, float]] = set()
    for record in records:
        plan = plan_patient(SEED, record.patient, 128)[0]
        series = next(s for s in plan.series if (s.study, s.series) == (record.study, record.series))
        coverages.add((round(series.first_depth), round(series.last_depth)))
        expected = body_position(plan.anatomy, series.depth_of(record.key_slice))
        for lesion in record.lesions:
            assert lesion.location[2] == pytest.approx(expected, abs=1e-3), record.file_name
    assert len(coverages) >= 5, "the test needs scans over different ranges of the body"


def test_types_keep_their_body_level_across_patients(generated: Path):
    """Chest lesions lie above the liver's, the liver's above the pelvis', in every patient: with z
    relative to each scan's range a pelvis-only scan put pelvic lesions where chests are."""
    by_type: dict[int, list[float]] = {}
    for record in read_dl_info(generated / "DL_info.csv"):
        for lesion in record.lesions:
            by_type.setdefault(lesion.lesion_type, []).append(lesion.location[2])
    chest = by_type.get(LUNG, []) + by_type.get(MEDIASTINUM, [])
    assert chest and by_type.get(PELVIS) and by_type.get(LIVER)
    assert max(chest) < min(by_type[PELVIS])
    assert np.median(chest) < np.median(by_type[LIVER]) < np.median(by_type[PELVIS])
