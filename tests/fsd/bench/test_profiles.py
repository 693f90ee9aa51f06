"""The per-stage profiles of `fsd bench speed` and `fsd bench train-step`: every stage is
measured, normalization is counted once (apart from the modules it sits in), and the stages add
up to the measured total; the training-step profile runs the training engine's own weight step
(learning-rate schedule, clipping, run position), not a copy of it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fsd.cli.bench.profile import STAGES, profile_markdown
from fsd.cli.bench.speed import load_fsd_module, profile_model
from fsd.cli.bench.train_profile import (
    TRAIN_STAGES,
    profile_steps,
    profile_training_step,
    train_profile_markdown,
)
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


def test_the_training_step_profile_runs_the_engines_weight_step(tmp_path: Path):
    """BIN gates pushed out of [0, 1] come back (gate clipping), every group's learning rate is the
    schedule's at the last step (warm-up), and the run position advanced once per step."""
    from fsd.engine.distributed import init_distributed
    from fsd.engine.schedule import lr_at
    from fsd.engine.trainer import Trainer
    from fsd.models import architecture_record, default_genotype
    from fsd.nn import BatchInstanceNorm2d

    generate_dataset(tmp_path / "data", patients=5, size=96, seed=2)
    config = FsdConfig.model_validate(
        {
            "data": {"root": tmp_path / "data"},
            "preprocess": {"spacing_mm": 2.0, "max_size": 96},
            "model": {"norm": "bin", "fpn_channels": 16, "roi": {"representation": 32, "batch_size_per_image": 16}},
            "train": {"batch_size": 1, "warmup_iters": 50, "lr": 0.01, "norm_mix_lr_scale": 2.0},
        }
    )
    trainer = Trainer(config, architecture_record(genotype=default_genotype()), tmp_path / "run", init_distributed("cpu"), progress=False)
    gates = [module.gate for module in trainer.network.modules() if isinstance(module, BatchInstanceNorm2d)]
    assert gates
    with torch.no_grad():
        for gate in gates:
            gate.fill_(3.0)
    profile_steps(trainer, iterations=2, warmup=1)
    assert trainer.position.iteration == 3
    assert all(float(gate.detach().max()) <= 1.0 and float(gate.detach().min()) >= 0.0 for gate in gates), "gates clipped after the step"
    expected = lr_at(2, trainer.position.total_iters, 0.01, 50, config.train.min_lr_ratio)
    assert {round(group["lr"] / group.get("lr_scale", 1.0), 12) for group in trainer.optimizer.param_groups} == {round(expected, 12)}
    assert any(group.get("lr_scale", 1.0) != 1.0 for group in trainer.optimizer.param_groups), "the norm mixing group is scaled"
