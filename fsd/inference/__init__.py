"""Inference shared by `fsd predict` and the server: CT slices in, model inputs, detections out,
converted to the original DICOM pixel grid, millimetres and patient coordinates."""

from fsd.inference.inputs import (
    SliceInput,
    iter_slice_inputs_from_ct,
    slice_inputs_from_ct,
    slice_inputs_from_png,
)
from fsd.inference.results import detections_to_result
from fsd.inference.runner import run_detector

__all__ = [
    "SliceInput",
    "detections_to_result",
    "iter_slice_inputs_from_ct",
    "run_detector",
    "slice_inputs_from_ct",
    "slice_inputs_from_png",
]
