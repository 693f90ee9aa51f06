"""The one preprocessing definition: slice context, border clipping, windowing, resampling, boxes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fsd.errors import ConfigError
from fsd.preprocess import (
    Geometry,
    PreprocessConfig,
    context_offsets_mm,
    foreground_bbox,
    interpolate_context,
    preprocess_context,
)


def test_context_offsets_are_symmetric_at_the_interval():
    assert context_offsets_mm(PreprocessConfig()).tolist() == [-2.0, 0.0, 2.0]
    nine = context_offsets_mm(PreprocessConfig(num_slices=9))
    assert nine.tolist() == [-8.0, -6.0, -4.0, -2.0, 0.0, 2.0, 4.0, 6.0, 8.0]


def test_interpolate_context_is_linear_between_slices_and_clamped_at_the_ends():
    # slices at 0, 5, 10 mm whose value equals their position: a 2 mm context around 5 mm
    positions = [0.0, 5.0, 10.0]
    loads: list[int] = []

    def load(i: int) -> np.ndarray:
        loads.append(i)
        return np.full((4, 4), positions[i], dtype=np.float32)

    context = interpolate_context(positions, 5.0, load, PreprocessConfig())
    assert context[:, 0, 0].tolist() == pytest.approx([3.0, 5.0, 7.0])
    assert sorted(loads) == [0, 1, 2]  # each slice read once
    edge = interpolate_context(positions, 10.0, load, PreprocessConfig())
    assert edge[:, 0, 0].tolist() == pytest.approx([8.0, 10.0, 10.0])


def test_single_slice_context_replicates_the_key_slice():
    context = interpolate_context([3.0], 3.0, lambda i: np.ones((2, 2)), PreprocessConfig())
    assert context.shape == (3, 2, 2) and np.all(context == 1)


def test_interpolate_context_rejects_unsorted_positions():
    with pytest.raises(ValueError, match="increasing"):
        interpolate_context([1.0, 0.0], 0.0, lambda i: np.zeros((2, 2)), PreprocessConfig())


def test_foreground_bbox_finds_the_body_with_margin():
    hu = np.full((50, 60), -1000.0)
    hu[10:20, 30:40] = 40.0
    assert foreground_bbox(hu, -900, margin_px=2) == (28, 8, 42, 22)
    assert foreground_bbox(np.full((5, 6), -1000.0), -900) == (0, 0, 6, 5)


def test_preprocess_windows_clips_resamples_and_maps_boxes_both_ways():
    config = PreprocessConfig(spacing_mm=0.8, border_margin_px=0)
    hu = np.full((3, 100, 120), -2048.0, dtype=np.float32)
    hu[:, 20:80, 10:110] = 40.0  # body
    image, geometry = preprocess_context(hu, (0.4, 0.4), config)
    assert (geometry.crop_x0, geometry.crop_y0) == (10, 20)
    assert image.shape == (3, 30, 50)  # 60x100 px at 0.4 mm -> 0.8 mm
    expected = (40.0 + 1024.0) / 4095.0
    assert float(image[1, 15, 25]) == pytest.approx(expected, abs=1e-5)
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    box = np.array([[30.0, 40.0, 50.0, 60.0]])
    model_box = geometry.to_model(box)
    assert model_box[0].tolist() == pytest.approx([10.0, 10.0, 20.0, 20.0])
    assert geometry.to_original(model_box) == pytest.approx(box)


def test_anisotropic_spacing_and_max_size_cap():
    config = PreprocessConfig(spacing_mm=0.5, max_size=64, clip_black_border=False)
    hu = np.zeros((3, 100, 100), dtype=np.float32)
    image, geometry = preprocess_context(hu, (1.0, 0.5), config)
    # rows double (1.0 -> 0.5 mm), columns keep: 200 x 100, then capped to 64 on the long side
    assert image.shape == (3, 64, 32)
    assert geometry.scale_y == pytest.approx(0.64) and geometry.scale_x == pytest.approx(0.32)


def test_resampling_preserves_a_box_drawn_in_the_image():
    config = PreprocessConfig(spacing_mm=0.8, clip_black_border=False)
    hu = np.full((3, 200, 200), -1000.0, dtype=np.float32)
    hu[:, 60:100, 80:140] = 1000.0
    image, geometry = preprocess_context(hu, (0.6, 0.6), config)
    bright = torch.nonzero(image[1] > 0.4)
    x1, y1, x2, y2 = geometry.to_model(np.array([[80, 60, 140, 100]]))[0]
    assert bright[:, 1].min() >= np.floor(x1) - 1 and bright[:, 1].max() <= np.ceil(x2)
    assert bright[:, 0].min() >= np.floor(y1) - 1 and bright[:, 0].max() <= np.ceil(y2)


@pytest.mark.parametrize(
    "kwargs, key",
    [({"window_hu": (100, -100)}, "window_hu"), ({"num_slices": 2}, "num_slices"), ({"spacing_mm": 0}, "spacing_mm")],
)
def test_invalid_config_names_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        PreprocessConfig(**kwargs)


def test_config_round_trip_and_unknown_keys():
    config = PreprocessConfig(num_slices=9, window_hu=(-1024, 2050))
    assert PreprocessConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="bogus"):
        PreprocessConfig.from_dict({"bogus": 1})


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="slice context"):
        preprocess_context(np.zeros((2, 10, 10)), (1.0, 1.0), PreprocessConfig())
    with pytest.raises(ValueError, match="spacing"):
        preprocess_context(np.zeros((3, 10, 10)), (0.0, 1.0), PreprocessConfig())


def test_geometry_clip():
    geometry = Geometry(0, 0, 1.0, 1.0, 10, 20, 10, 20)
    assert geometry.clip_model_boxes(np.array([[-5, -1, 30, 12]])).tolist() == [[0, 0, 20, 10]]
