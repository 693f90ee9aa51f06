"""The demo's last stage against a real `fsd serve` process: start on loopback with an API key,
POST a test patient's synthetic DICOM series, get one result per slice, stop the server."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fsd.cli.demo import pick_test_key_slice, query_server, series_files
from fsd.config import FsdConfig
from fsd.data.synth import generate_dataset
from fsd.export import export_module
from fsd.models import DetectorConfig, architecture_record, build_detector, default_genotype

pytestmark = pytest.mark.slow


def test_demo_query_against_a_live_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    generate_dataset(tmp_path / "data", patients=4, size=128, seed=4, dicom=True, type_all=True, progress=False)
    config = FsdConfig.model_validate(
        {"task": "types", "data": {"root": str(tmp_path / "data")}, "preprocess": {"spacing_mm": 2.0, "max_size": 96},
         "model": {"roi": {"score_thresh": 0.0}}}
    )
    detector_config = DetectorConfig.from_config(config)
    torch.manual_seed(0)
    export_module(
        build_detector(default_genotype(), detector_config), tmp_path / "export",
        architecture=architecture_record(genotype=default_genotype()), detector_config=detector_config,
        preprocess=config.preprocess, task="types", name="demo-test", version="0", verify_samples=1,
    )
    record = pick_test_key_slice(config)
    files = series_files(config, record)
    assert any(f.name == f"{record.key_slice:03d}.dcm" for f in files) and len(files) >= 2
    answer = query_server(config, tmp_path / "export")
    assert answer["model"]["name"] == "demo-test"
    assert len(answer["results"]) == len(files)
    printed = capsys.readouterr().out
    assert "truth" in printed and record.folder in printed
