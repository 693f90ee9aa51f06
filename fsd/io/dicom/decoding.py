"""Decode CT pixel data, already validated by :mod:`.pixels`, to Hounsfield units, frame by frame.

Only the allowed, importable plugins of :mod:`.codecs` are tried, in order of
preference; any decoder failure, or a decoded frame of another shape or a non-integer type, is
``invalid_pixel_data``. HU are the modality LUT output of each frame's own rescale.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydicom import uid as dicom_uid
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, get_decoder

from fsd.io.dicom.codecs import usable_plugins
from fsd.io.dicom.errors import INVALID_PIXEL_DATA, DicomError
from fsd.io.dicom.pixels import PixelLayout

logger = logging.getLogger(__name__)


def decode_hu(ds: Dataset, layout: PixelLayout, rescales: Sequence[Dataset]) -> list[np.ndarray]:
    """Every frame as float32 HU; ``rescales[i]`` holds frame i's RescaleSlope/RescaleIntercept."""
    decoder = get_decoder(layout.transfer_syntax)
    plugins = usable_plugins(layout.transfer_syntax) or ("",)
    ds.file_meta.TransferSyntaxUID = dicom_uid.UID(layout.transfer_syntax)  # needed by the decoder
    failures = []
    for plugin in plugins:
        options: dict[str, Any] = {"as_rgb": False}
        if plugin:
            options["decoding_plugin"] = plugin
        try:
            hu_frames = []
            for array, _ in decoder.iter_array(ds, **options):
                if array.shape != (layout.rows, layout.columns) or array.dtype.kind not in "iu":
                    raise ValueError(f"decoded frame has shape {array.shape} and dtype {array.dtype}")
                rescale = rescales[len(hu_frames)]
                hu_frames.append(np.asarray(apply_modality_lut(array, rescale), dtype=np.float32))
                if len(hu_frames) == layout.frames:
                    break
        except Exception as error:
            failures.append(f"{plugin or 'pydicom'}: {type(error).__name__}")
            continue
        if len(hu_frames) == layout.frames:
            return hu_frames
        failures.append(f"{plugin or 'pydicom'}: {len(hu_frames)} of {layout.frames} frames")
    logger.debug("pixel decoding failed (%s)", "; ".join(failures))
    raise DicomError(
        f"The pixel data could not be decoded as {dicom_uid.UID(layout.transfer_syntax).name}.",
        INVALID_PIXEL_DATA,
    )
