"""What the scanner adds to the ideal picture: blur, correlated noise, the reconstruction circle,
and integer HU within the range a CT image can hold."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from fsd.data.synth.geometry import Grid

HU_MIN = -1024
HU_MAX = 3071


@dataclass(frozen=True)
class ScannerSettings:
    """Image-quality settings of one series."""

    noise_sd: float  # HU, standard deviation of the image noise
    blur_mm: float  # resolution of the reconstruction kernel
    padding_hu: int | None  # value outside the reconstruction circle (None: air is kept)


def acquire(
    ideal_hu: np.ndarray, grid: Grid, settings: ScannerSettings, rng: np.random.Generator
) -> np.ndarray:
    """Turn a noise-free HU picture into a CT slice: int16 HU."""
    sigma_px = max(0.5, settings.blur_mm / grid.spacing)
    image = ndimage.gaussian_filter(ideal_hu.astype(np.float32), sigma_px, mode="nearest")
    noise = ndimage.gaussian_filter(rng.standard_normal(image.shape, dtype=np.float32), 0.7, mode="wrap")
    # a 2D Gaussian filter of width s divides white-noise SD by 2 s sqrt(pi)
    noise *= settings.noise_sd * 2.0 * 0.7 * np.sqrt(np.pi)
    image += noise
    result = np.clip(np.rint(image), HU_MIN, HU_MAX).astype(np.int16)
    if settings.padding_hu is not None:
        result[outside_reconstruction_circle(grid)] = settings.padding_hu
    return result


def outside_reconstruction_circle(grid: Grid) -> np.ndarray:
    """Pixels beyond the circle inscribed in the square image (no projection data there)."""
    coordinates = grid.to_mm(np.arange(grid.size, dtype=np.float64))
    radius = 0.5 * grid.size * grid.spacing
    return coordinates[None, :] ** 2 + coordinates[:, None] ** 2 > radius * radius
