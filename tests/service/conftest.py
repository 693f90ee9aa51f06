"""Fixtures of the service tests: a real (untrained, seeded) exported detector, a synthetic CT
series written as DICOM, and apps built with ``create_app`` around them.

The test model uses a coarse 3.2 mm pixel spacing and 128-pixel inputs so that CPU inference
stays fast; with score_thresh 0 an untrained detector still returns detections.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydicom.data import get_testdata_file
from service_helpers import API_KEY, export_untrained_model, serving

from fsd.artifacts import InferenceModel, load_exported
from service import create_app, load_settings

SERIES_SLICES = 5


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the test, never from FSD_* variables of the machine running it."""
    import os

    for name in list(os.environ):
        if name.startswith("FSD_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_untrained_model(tmp_path_factory.mktemp("model"), score_thresh=0.0)


@pytest.fixture(scope="session")
def inference_model(model_dir: Path) -> InferenceModel:
    return load_exported(model_dir, "cpu")


@pytest.fixture(scope="session")
def synth_series(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Five consecutive slices (64 x 64) from the middle of a synthetic CT series."""
    from fsd.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, patients=1, size=64, seed=0, dicom=True, progress=False)
    files = sorted((root / "dicom").glob("*/*.dcm"))
    middle = len(files) // 2
    return files[middle - SERIES_SLICES // 2 : middle + SERIES_SLICES // 2 + 1]


@pytest.fixture(scope="session")
def series_uploads(synth_series: list[Path]) -> list[tuple[str, bytes]]:
    return [(path.name, path.read_bytes()) for path in synth_series]


@pytest.fixture(scope="session")
def ct_small_bytes() -> bytes:
    path = get_testdata_file("CT_small.dcm", download=False)
    assert path is not None, "pydicom ships CT_small.dcm"
    return Path(path).read_bytes()


@pytest.fixture
def make_app(model_dir: Path, inference_model: InferenceModel) -> Callable[..., FastAPI]:
    """``make_app(model=..., **settings)``: an app around the test model (auth on by default; a
    study received by STOW-RS is analysed 0.2 s after its last instance; one model worker, so a
    test that holds the model holds every batch)."""

    def build(model: InferenceModel | None = None, **overrides: Any) -> FastAPI:
        values: dict[str, Any] = {
            "model_dir": model_dir, "api_key": API_KEY, "warmup_runs": 1, "max_wait_ms": 5.0, "stow_study_quiet_s": 0.2,
            "model_workers": 1,
        }
        values.update(overrides)
        return create_app(load_settings(**values), model=model or inference_model)

    return build


@pytest.fixture
def client(make_app: Callable[..., FastAPI]) -> Iterator[TestClient]:
    with serving(make_app()) as test_client:
        yield test_client
