"""Synthetic CT data in DeepLesion's exact on-disk format (DL_info.csv + 16-bit PNG slices, and
optionally the same slices as DICOM series), with a picture to check it by eye."""

from fsd.data.synth.generate import SynthSummary, check_generated, generate_dataset
from fsd.data.synth.show import render_samples

__all__ = ["SynthSummary", "check_generated", "generate_dataset", "render_samples"]
