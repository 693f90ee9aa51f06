"""Inference inputs and results: series context from neighbours, fallbacks, coordinate mapping."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pydicom
import pytest
import torch
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from fsd.inference import detections_to_result, slice_inputs_from_ct
from fsd.io.dicom import read_ct
from fsd.preprocess import PreprocessConfig

CONFIG = PreprocessConfig(clip_black_border=False, spacing_mm=0.66)


def _series(z_positions: list[float], values: list[int], series_uid: str | None = None) -> list[bytes]:
    """CT_small copies whose pixels are a constant HU per slice, at the given z positions."""
    source = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
    series_uid = series_uid or generate_uid()
    files = []
    for z, value in zip(z_positions, values):
        ds = source.copy()
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.ImagePositionPatient = [-100.0, -120.0, z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelData = np.full((128, 128), value + 1024, dtype=np.int16).tobytes()
        buffer = BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        files.append(buffer.getvalue())
    return files


def _slices(files: list[bytes]):
    return [s for data in files for s in read_ct(data)]


def _hu(image: torch.Tensor, channel: int) -> float:
    low, high = CONFIG.window_hu
    return float(image[channel, 64, 64]) * (high - low) + low


def test_context_channels_interpolate_neighbours_at_two_mm_head_first():
    # slices 1 mm apart holding HU = 10 * z; channel 0 is the superior neighbour (z + 2), as
    # DeepLesion numbers slices from head to feet
    files = _series([0, 1, 2, 3, 4, 5, 6], [0, 10, 20, 30, 40, 50, 60])
    inputs = slice_inputs_from_ct(_slices(files), CONFIG)
    middle = next(i for i in inputs if abs(i.position_mm[2] - 3.0) < 1e-6)
    assert [round(_hu(middle.image, c)) for c in range(3)] == [50, 30, 10]
    assert middle.context_slices == 3
    first = inputs[0]  # the most superior slice, z = 6: the missing z = 8 takes the end slice
    assert first.position_mm[2] == 6.0
    assert [round(_hu(first.image, c)) for c in range(3)] == [60, 60, 40]
    shuffled = slice_inputs_from_ct(_slices([files[i] for i in (4, 0, 6, 2, 1, 5, 3)]), CONFIG)
    assert [i.position_mm[2] for i in shuffled] == [6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0]


def test_interpolation_between_slices_five_mm_apart():
    files = _series([0, 5, 10], [0, 50, 100])
    inputs = slice_inputs_from_ct(_slices(files), CONFIG)
    assert [round(_hu(inputs[1].image, c)) for c in range(3)] == [70, 50, 30]


def test_single_slice_falls_back_to_itself():
    inputs = slice_inputs_from_ct(_slices(_series([7.0], [40])), CONFIG)
    assert len(inputs) == 1 and inputs[0].context_slices == 1
    assert [round(_hu(inputs[0].image, c)) for c in range(3)] == [40, 40, 40]


def test_series_are_kept_apart_and_repeated_positions_fall_back():
    a = _series([0, 2, 4], [0, 20, 40])
    b = _series([0, 0], [100, 200])  # same position twice: no usable ordering
    inputs = slice_inputs_from_ct(_slices(a + b), CONFIG)
    assert len(inputs) == 5
    assert len({i.series_instance_uid for i in inputs}) == 2
    repeated = [i for i in inputs if i.series_instance_uid == inputs[-1].series_instance_uid]
    assert all(i.context_slices == 1 for i in repeated)


def test_results_map_boxes_to_original_pixels_mm_and_patient_coordinates():
    files = _series([0.0], [40])
    slice_input = slice_inputs_from_ct(_slices(files), CONFIG)[0]
    spacing = slice_input.spacing_mm
    # a model-grid box whose original-grid box is [10, 20, 30, 60]
    model_box = torch.tensor(slice_input.geometry.to_model(np.array([[10, 20, 30, 60]])), dtype=torch.float32)
    detection = {
        "boxes": model_box,
        "scores": torch.tensor([0.9]),
        "labels": torch.tensor([4]),
        "type_scores": torch.tensor([[0.0, 0.0, 0.1, 0.8, 0.1, 0.0, 0.0, 0.0]]),
    }
    names = ["bone", "abdomen", "mediastinum", "liver", "lung", "kidney", "soft_tissue", "pelvis"]
    result = detections_to_result(detection, slice_input, names)
    found = result["detections"][0]
    assert found["box_px"] == pytest.approx([10, 20, 30, 60], abs=0.02)
    assert found["box_mm"] == pytest.approx([10 * spacing[1], 20 * spacing[0], 30 * spacing[1], 60 * spacing[0]], abs=0.05)
    # centre (20, 40) in edge coordinates is pixel index (19.5, 39.5) from ImagePositionPatient
    expected_centre = [-100.0 + 19.5 * spacing[1], -120.0 + 39.5 * spacing[0], 0.0]
    assert found["center_patient_mm"] == pytest.approx(expected_centre, abs=0.05)
    assert found["type"] == "liver" and found["type_id"] == 4 and found["type_scores"]["liver"] == 0.8
    assert found["long_diameter_mm"] == pytest.approx(40 * spacing[0] - 10 * spacing[0], abs=0.05)
    assert result["frame"] == 1 and result["sop_instance_uid"] == slice_input.sop_instance_uid
    assert detections_to_result(detection, slice_input, names, min_score=0.95)["detections"] == []


def test_binary_results_have_no_type_id():
    slice_input = slice_inputs_from_ct(_slices(_series([0.0], [40])), CONFIG)[0]
    detection = {"boxes": torch.tensor([[1.0, 1.0, 9.0, 9.0]]), "scores": torch.tensor([0.5]), "labels": torch.tensor([1]), "type_scores": torch.ones(1, 1)}
    found = detections_to_result(detection, slice_input, ["lesion"])["detections"][0]
    assert found["type"] == "lesion" and found["type_id"] is None and found["type_scores"] == {"lesion": 1.0}
