"""The per-stage profiles of `fsd bench speed` and `fsd bench train-step`: every stage is
measured, normalization is counted once (apart from the modules it sits in), and the stages add
up to the measured total."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fsd.cli.bench.profile import STAGES, profile_markdown
from fsd.cli.bench.speed import load_fsd_module, profile_model
from fsd.cli.bench.train_profile import TRAIN_STAGES, profile_training_step, train_profile_markdown
from fsd.config import FsdConfig
from fsd.data.synth import generate_dataset

pytestmark = pytest.mark.slow


def test_inference_profile_has_every_stage_and_adds_up():
    module, channels = load_fsd_module(None, 96)
    rows = profile_model(module, torch.device("cpu"), 96, channels, [1, 2], "fp32", warmup=1, repeats=2)
    assert list(rows) == ["fp32 batch 1", "fp32 batch 2"]
    for row in rows.values():
        assert set(row) == {*STAGES, "total"}
        for stage in ("backbone convolutions", "normalization statistics", "neck", "RPN + post-processing", "RoI align", "RoI head + graph"):
            assert row[stage] > 0, stage
        assert all(row[stage] >= -0.05 for stage in STAGES), row
        assert sum(row[stage] for stage in STAGES) == pytest.approx(row["total"], abs=0.05)
    table = profile_markdown(rows)
    assert table.splitlines()[0] == "| stage | fp32 batch 1 | fp32 batch 2 |"
    assert "| normalization statistics |" in table and "| total |" in table


def test_training_step_profile_has_every_stage_and_adds_up(tmp_path: Path):
    generate_dataset(tmp_path / "data", patients=5, size=96, seed=2)
    config = FsdConfig.model_validate(
        {
            "data": {"root": tmp_path / "data"},
            "preprocess": {"spacing_mm": 2.0, "max_size": 96},
            "model": {"norm": "sn", "fpn_channels": 16, "roi": {"representation": 32, "batch_size_per_image": 16}},
            "train": {"batch_size": 1, "warmup_iters": 1},
        }
    )
    row = profile_training_step(config, iterations=3, warmup=1, device="cpu")
    assert set(row) == {*TRAIN_STAGES, "total"}
    for stage in ("data", "forward: backbone convolutions", "forward: normalization statistics", "forward: RoI align", "backward", "optimizer step"):
        assert row[stage] > 0, stage
    assert sum(row[stage] for stage in TRAIN_STAGES) == pytest.approx(row["total"], abs=0.05)
    table = train_profile_markdown({"toy": row})
    assert "| forward: RoI sampling + losses |" in table and "final post-processing" not in table
