"""DeepLesion's 16-bit PNG slices: HU = stored value - 32768."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fsd.constants import DEEPLESION_HU_OFFSET
from fsd.errors import DataError


def read_deeplesion_png(path: str | Path) -> np.ndarray:
    """Read one DeepLesion slice as float32 HU (H, W).

    Raises DataError when the file is missing, not a PNG, truncated, or not 16-bit.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode not in ("I;16", "I;16B", "I;16L", "I"):
                raise DataError(f"{path}: expected a 16-bit grayscale PNG, got mode {image.mode!r}")
            stored = np.asarray(image, dtype=np.int32)
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError) as error:
        raise DataError(f"{path}: cannot read PNG ({error})") from error
    return (stored - DEEPLESION_HU_OFFSET).astype(np.float32)


def write_deeplesion_png(path: str | Path, hu: np.ndarray, compress_level: int = 1) -> None:
    """Write HU values (any float/int array, H x W) as a DeepLesion 16-bit PNG (HU + 32768).

    Level 1 deflate is ~6x faster than PIL's default 6 for ~10% larger files (lossless either way).
    """
    stored = np.clip(np.rint(np.asarray(hu, dtype=np.float64)) + DEEPLESION_HU_OFFSET, 0, 65535)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(stored.astype(np.uint16)).save(path, format="PNG", compress_level=compress_level)
