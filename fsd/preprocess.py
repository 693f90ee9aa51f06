"""The one definition of how CT pixels become model input.

Training (DeepLesion PNGs), ``fsd predict`` and the server (DICOM) all call this module, and the
exported model card records a :class:`PreprocessConfig` (defined without torch in
:mod:`fsd.preprocess_config` and re-exported here), so a deployed model sees exactly the
input it was trained on. The steps follow 3DCE/MULAN:

1. slice context: the key slice and its neighbours at a fixed interval (2 mm by default), linearly
   interpolated between the slices that exist and clamped at the ends of what exists;
2. black-border clipping: crop to the rows/columns that hold anything above air on the key slice;
3. HU windowing to [0, 1];
4. resampling to a fixed pixel spacing (0.8 mm by default), with the longest side capped.

Boxes move between the original pixel grid and the model grid only through :class:`Geometry`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fsd.preprocess_config import PreprocessConfig


def context_offsets_mm(config: PreprocessConfig) -> np.ndarray:
    """Offsets (mm, along the slice axis) of the channels relative to the key slice."""
    half = config.num_slices // 2
    return (np.arange(config.num_slices, dtype=np.float64) - half) * config.slice_interval_mm


def _checked_positions(positions_mm: Sequence[float]) -> np.ndarray:
    positions = np.asarray(positions_mm, dtype=np.float64)
    if positions.ndim != 1 or positions.size == 0:
        raise ValueError("a slice context needs at least one slice position")
    if np.any(np.diff(positions) <= 0):
        raise ValueError("slice positions must be strictly increasing")
    return positions


def context_sources(positions_mm: Sequence[float], key_position_mm: float, config: PreprocessConfig) -> list[tuple[int, int, float]]:
    """Where each context channel comes from: ``(lower, upper, weight)`` per channel, the channel
    being ``(1 - weight) * slice[lower] + weight * slice[upper]`` (``lower == upper`` for a slice
    read as is).

    ``positions_mm`` are the positions along the slice axis of the slices that exist, sorted
    ascending. Each channel sits at ``key + offset`` (:func:`context_offsets_mm`); a position
    beyond the slices that exist takes the nearest end slice (with one slice only, every channel
    is that slice).
    """
    positions = _checked_positions(positions_mm)
    sources: list[tuple[int, int, float]] = []
    for offset in context_offsets_mm(config):
        target = float(key_position_mm + offset)
        if target <= positions[0]:
            sources.append((0, 0, 0.0))
            continue
        if target >= positions[-1]:
            last = len(positions) - 1
            sources.append((last, last, 0.0))
            continue
        upper = int(np.searchsorted(positions, target, side="left"))
        if np.isclose(positions[upper], target):
            sources.append((upper, upper, 0.0))
            continue
        lower = upper - 1
        sources.append((lower, upper, float((target - positions[lower]) / (positions[upper] - positions[lower]))))
    return sources


def context_slices_read(positions_mm: Sequence[float], key_position_mm: float, config: PreprocessConfig) -> int:
    """How many distinct slices the context of ``key_position_mm`` reads."""
    return len({index for lower, upper, _ in context_sources(positions_mm, key_position_mm, config) for index in (lower, upper)})


def interpolate_context(
    positions_mm: Sequence[float],
    key_position_mm: float,
    load_slice: Callable[[int], np.ndarray],
    config: PreprocessConfig,
) -> np.ndarray:
    """Stack the slice context of a key slice as (C, H, W) float32 HU, every channel as
    :func:`context_sources` says; ``load_slice(i)`` returns slice ``i`` as HU (H, W) and is
    called at most once per slice.

    This is the one slice-context assembly: the training data (DeepLesion PNGs) and inference
    (DICOM series, PNGs) both call it.
    """
    cache: dict[int, np.ndarray] = {}

    def get(index: int) -> np.ndarray:
        if index not in cache:
            cache[index] = np.asarray(load_slice(index), dtype=np.float32)
        return cache[index]

    channels: list[np.ndarray] = []
    for lower, upper, weight in context_sources(positions_mm, key_position_mm, config):
        if lower == upper:
            channels.append(get(lower))
        else:
            w = np.float64(weight)  # blend in float64, as the stored HU are exact there
            channels.append(((1.0 - w) * get(lower) + w * get(upper)).astype(np.float32))
    shapes = {c.shape for c in channels}
    if len(shapes) != 1:
        raise ValueError(f"context slices differ in shape: {sorted(shapes)}")
    return np.stack(channels, axis=0)


@dataclass(frozen=True)
class Geometry:
    """Maps boxes between the original pixel grid and the model-input grid.

    ``model = (original - crop_origin) * scale`` per axis, in continuous pixel coordinates
    (a pixel i spans [i, i + 1)), which is what bilinear resizing with ``align_corners=False``
    implements.
    """

    crop_x0: int
    crop_y0: int
    scale_x: float
    scale_y: float
    model_height: int
    model_width: int
    original_height: int
    original_width: int

    def to_model(self, boxes: np.ndarray) -> np.ndarray:
        """Original-grid boxes (N, 4) x1, y1, x2, y2 -> model-grid boxes."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        out = np.empty_like(boxes)
        out[:, 0::2] = (boxes[:, 0::2] - self.crop_x0) * self.scale_x
        out[:, 1::2] = (boxes[:, 1::2] - self.crop_y0) * self.scale_y
        return out

    def to_original(self, boxes: np.ndarray) -> np.ndarray:
        """Model-grid boxes (N, 4) -> original-grid boxes."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        out = np.empty_like(boxes)
        out[:, 0::2] = boxes[:, 0::2] / self.scale_x + self.crop_x0
        out[:, 1::2] = boxes[:, 1::2] / self.scale_y + self.crop_y0
        return out

    def clip_model_boxes(self, boxes: np.ndarray) -> np.ndarray:
        """Clip model-grid boxes to the model image."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, self.model_width)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, self.model_height)
        return boxes


def foreground_bbox(hu: np.ndarray, threshold_hu: float, margin_px: int = 0) -> tuple[int, int, int, int]:
    """Bounding box (x0, y0, x1, y1), end-exclusive, of pixels above ``threshold_hu``.

    Returns the whole image when nothing is above the threshold.
    """
    height, width = hu.shape
    mask = hu > threshold_hu
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0 or cols.size == 0:
        return 0, 0, width, height
    x0 = max(int(cols[0]) - margin_px, 0)
    y0 = max(int(rows[0]) - margin_px, 0)
    x1 = min(int(cols[-1]) + 1 + margin_px, width)
    y1 = min(int(rows[-1]) + 1 + margin_px, height)
    return x0, y0, x1, y1


def window(hu: torch.Tensor, config: PreprocessConfig) -> torch.Tensor:
    """HU -> [0, 1] with the configured window."""
    low, high = config.window_hu
    return ((hu - low) / (high - low)).clamp_(0.0, 1.0)


def target_size(height: int, width: int, spacing_rc_mm: tuple[float, float], config: PreprocessConfig) -> tuple[int, int]:
    """Model-grid size (H, W) of a (height, width) crop at the given (row, col) spacing."""
    row_mm, col_mm = spacing_rc_mm
    new_h = height * row_mm / config.spacing_mm
    new_w = width * col_mm / config.spacing_mm
    longest = max(new_h, new_w)
    if longest > config.max_size:
        factor = config.max_size / longest
        new_h *= factor
        new_w *= factor
    return max(int(round(new_h)), 1), max(int(round(new_w)), 1)


def preprocess_context(
    context_hu: np.ndarray,
    spacing_rc_mm: tuple[float, float],
    config: PreprocessConfig,
) -> tuple[torch.Tensor, Geometry]:
    """Turn a (C, H, W) HU slice context into the model input and its geometry.

    ``spacing_rc_mm`` is the pixel spacing (row, column) of the original grid, as DICOM's
    PixelSpacing. Returns a float32 tensor (C, H', W') in [0, 1] and the :class:`Geometry`.
    """
    context_hu = np.asarray(context_hu, dtype=np.float32)
    if context_hu.ndim != 3 or context_hu.shape[0] != config.num_slices:
        raise ValueError(
            f"expected a ({config.num_slices}, H, W) slice context, got shape {tuple(context_hu.shape)}"
        )
    if min(spacing_rc_mm) <= 0 or not np.all(np.isfinite(spacing_rc_mm)):
        raise ValueError(f"pixel spacing must be positive and finite, got {spacing_rc_mm}")
    _, height, width = context_hu.shape
    key = context_hu[config.num_slices // 2]
    if config.clip_black_border:
        x0, y0, x1, y1 = foreground_bbox(key, config.border_threshold_hu, config.border_margin_px)
    else:
        x0, y0, x1, y1 = 0, 0, width, height
    cropped = torch.from_numpy(np.ascontiguousarray(context_hu[:, y0:y1, x0:x1]))
    new_h, new_w = target_size(y1 - y0, x1 - x0, spacing_rc_mm, config)
    image = window(cropped, config)
    if (new_h, new_w) != (y1 - y0, x1 - x0):
        downsampling = new_h < (y1 - y0) or new_w < (x1 - x0)
        image = F.interpolate(
            image[None], size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=downsampling
        )[0].clamp_(0.0, 1.0)
    geometry = Geometry(
        crop_x0=x0,
        crop_y0=y0,
        scale_x=new_w / (x1 - x0),
        scale_y=new_h / (y1 - y0),
        model_height=new_h,
        model_width=new_w,
        original_height=height,
        original_width=width,
    )
    return image.contiguous(), geometry
