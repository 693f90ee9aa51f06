"""Train/serve parity: a key slice's model input is the same whether it is built from the
DeepLesion PNGs (training, ``fsd evaluate``) or from the DICOM series (the server, ``fsd
predict``).

The synthetic set writes every slice both ways. For every key slice of every split, the input
the data set builds from PNGs must equal, within ``TOLERANCE`` (in windowed [0, 1] units), the
input built from the whole DICOM series as the server receives it, with the same geometry (crop
and scale) so boxes map back to the same pixels.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from fsd.config import FsdConfig
from fsd.engine.datasets import build_dataset
from fsd.inference import slice_inputs_from_ct, slice_inputs_from_png
from fsd.io.dicom import read_ct_file

#: largest allowed difference of any input value (windowed units); the paths agree exactly today
TOLERANCE = 1e-6
PREPROCESSING = {
    "default (0.8 mm, 512 px)": {},
    "demo (1.6 mm, 256 px)": {"spacing_mm": 1.6, "max_size": 256},
    "5 slices at 3 mm": {"num_slices": 5, "slice_interval_mm": 3.0},
}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fsd.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("parity")
    generate_dataset(root, patients=8, size=96, seed=5, dicom=True, progress=False)
    return root


@functools.cache
def series(root: Path, folder: str) -> tuple[list, list[str]]:
    """The decoded slices of a DICOM series and their file names."""
    slices, sources = [], []
    for path in sorted((root / "dicom" / folder).glob("*.dcm")):
        for ct_slice in read_ct_file(path):
            slices.append(ct_slice)
            sources.append(path.name)
    return slices, sources


def dicom_inputs(root: Path, folder: str, config: FsdConfig) -> dict[str, object]:
    """The server's inputs for the whole series of ``folder`` (as one upload), by file name."""
    slices, sources = series(root, folder)
    return {item.source: item for item in slice_inputs_from_ct(slices, config.preprocess, sources)}


@pytest.mark.parametrize("preprocess", list(PREPROCESSING.values()), ids=list(PREPROCESSING))
def test_png_and_dicom_give_the_same_model_input_for_every_key_slice(synthetic: Path, preprocess: dict):
    config = FsdConfig.model_validate({"task": "binary", "data": {"root": synthetic}, "preprocess": preprocess})
    compared = 0
    for split in ("train", "val", "test"):
        dataset = build_dataset(config, split)
        for index, record in enumerate(dataset.records):
            from_png = dataset.prepared(index)
            from_dicom = dicom_inputs(synthetic, record.folder, config)[f"{record.key_slice:03d}.dcm"]
            assert from_dicom.geometry == from_png.geometry, record.file_name
            assert from_dicom.image.shape == from_png.image.shape, record.file_name
            difference = float((from_dicom.image - from_png.image).abs().max())
            assert difference <= TOLERANCE, f"{record.file_name}: inputs differ by {difference}"
            compared += 1
    assert compared >= 8


def test_fsd_predict_on_a_png_builds_the_training_input(synthetic: Path):
    config = FsdConfig.model_validate({"task": "binary", "data": {"root": synthetic}, "preprocess": {"spacing_mm": 1.6, "max_size": 256}})
    dataset = build_dataset(config, "test")
    record = dataset.records[0]
    (predicted,) = slice_inputs_from_png([record.slice_path(synthetic, record.key_slice)], config.preprocess)
    assert float((predicted.image - dataset.prepared(0).image).abs().max()) <= TOLERANCE
    assert predicted.geometry == dataset.prepared(0).geometry
