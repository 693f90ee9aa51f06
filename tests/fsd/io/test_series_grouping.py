"""group_series: slices grouped by SeriesInstanceUID and ordered along the slice normal."""

from __future__ import annotations

import random

import numpy as np
import pytest
from pydicom.data import get_testdata_files

from fsd.io.dicom import read_ct_file
from fsd.io.dicom.series import CTSlice, group_series, order_along_normal, slice_normal

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # normal = (0,1,0) x (0,0,-1) = (-1, 0, 0)


def make_slice(
    series: str = "1.2.3",
    position: tuple[float, float, float] | None = (0.0, 0.0, 0.0),
    orientation: tuple[float, ...] | None = AXIAL,
    slice_location: float | None = None,
    instance_number: int | None = None,
    sop: str = "1.2.3.4",
    frame: int = 1,
) -> CTSlice:
    return CTSlice(
        hu=np.zeros((2, 2), dtype=np.float32),
        spacing_mm=(1.0, 1.0),
        position_mm=position,
        orientation=orientation,
        slice_location=slice_location,
        sop_instance_uid=sop,
        series_instance_uid=series,
        study_instance_uid=None,
        frame=frame,
        number_of_frames=1,
        instance_number=instance_number,
        slice_thickness_mm=None,
        window=None,
    )


def test_bundled_ct_series_is_ordered_feet_to_head_from_any_input_order():
    paths = sorted(get_testdata_files("dicomdirtests/98892001/CT5N/*"))
    assert len(paths) == 5
    slices = [ct for path in paths for ct in read_ct_file(path)]
    random.Random(3).shuffle(slices)

    groups = group_series(slices)

    (series,) = groups.values()
    z = [ct.position_mm[2] for ct in series]
    assert z == pytest.approx([-1.2375, 1.2625, 3.7625, 6.2625, 8.7625])
    assert [ct.instance_number for ct in series] == [10, 9, 8, 7, 6]


def test_slices_are_grouped_by_series_uid():
    slices = [
        make_slice(series="A", position=(0, 0, 2)),
        make_slice(series="B", position=(0, 0, 5)),
        make_slice(series="A", position=(0, 0, 1)),
        make_slice(series="B", position=(0, 0, -5)),
    ]

    groups = group_series(slices)

    assert list(groups) == ["A", "B"]  # order of first appearance
    assert [s.position_mm[2] for s in groups["A"]] == [1, 2]
    assert [s.position_mm[2] for s in groups["B"]] == [-5, 5]


def test_sagittal_slices_are_ordered_along_their_normal_not_z():
    assert slice_normal(SAGITTAL) == pytest.approx((-1, 0, 0))
    slices = [make_slice(position=(x, 0.0, 100.0 - x), orientation=SAGITTAL) for x in (10.0, -5.0, 0.0)]

    ordered = order_along_normal(slices)

    assert [s.position_mm[0] for s in ordered] == [10.0, 0.0, -5.0]  # along -x
    assert [s.normal_position_mm for s in ordered] == pytest.approx([-10.0, 0.0, 5.0])


def test_oblique_stack_is_ordered_along_its_normal():
    angle = np.deg2rad(20)
    orientation = (1.0, 0.0, 0.0, 0.0, float(np.cos(angle)), float(-np.sin(angle)))
    normal = slice_normal(orientation)
    slices = [
        make_slice(position=tuple(float(v) for v in normal * d), orientation=orientation) for d in (3, -1, 2)
    ]

    assert [s.stack_position for s in order_along_normal(slices)] == pytest.approx([-1, 2, 3])


def test_without_geometry_slice_location_then_instance_number_order_the_series():
    by_location = [
        make_slice(position=None, slice_location=loc, instance_number=9) for loc in (5.0, -3.0, 1.0)
    ]
    assert [s.slice_location for s in order_along_normal(by_location)] == [-3.0, 1.0, 5.0]

    by_number = [make_slice(position=None, orientation=None, instance_number=n) for n in (3, 1, 2)]
    assert [s.instance_number for s in order_along_normal(by_number)] == [1, 2, 3]
    assert by_number[0].stack_position == 3.0


def test_one_slice_without_position_makes_the_series_fall_back_consistently():
    """Mixing mm positions for some slices with other keys would interleave them wrongly."""
    slices = [
        make_slice(position=(0, 0, 100.0), slice_location=1.0),
        make_slice(position=None, slice_location=3.0),
        make_slice(position=(0, 0, -100.0), slice_location=2.0),
    ]

    assert [s.slice_location for s in order_along_normal(slices)] == [1.0, 2.0, 3.0]


def test_equal_positions_keep_a_stable_order_by_instance_and_frame():
    slices = [
        make_slice(position=(0, 0, 0), instance_number=2, frame=1),
        make_slice(position=(0, 0, 0), instance_number=1, frame=2),
        make_slice(position=(0, 0, 0), instance_number=1, frame=1),
    ]

    ordered = order_along_normal(slices)

    assert [(s.instance_number, s.frame) for s in ordered] == [(1, 1), (1, 2), (2, 1)]


def test_slice_without_any_position_information_has_no_stack_position():
    ct = make_slice(position=None, orientation=None)
    assert ct.normal_position_mm is None and ct.stack_position is None


def test_empty_input_gives_no_series():
    assert group_series([]) == {}
