"""Where a training step spends its time: the data path, the forward pass stage by stage, the
backward pass and the optimizer step (``fsd bench train-step``).

It builds the config's training run exactly as `fsd train` does (data set, augmentation,
sampler, model with its type prior, optimizer) and times ``iterations`` steps after
``warmup`` steps: fetching the batch from the data loader (decoding, preprocessing from the
cache, augmentation, collation), the forward pass in training mode with the per-stage hooks of
:mod:`fsd.cli.bench.profile` (RoI sampling is part of the RoI heads; normalization statistics in
training mode are their own stage), the backward pass and the optimizer step.
"""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from fsd.cli.bench.profile import STAGES, StageTimer, detector_parts, split_stages, stage_table, watch_stages
from fsd.config import FsdConfig
from fsd.engine.distributed import init_distributed
from fsd.engine.trainer import Trainer
from fsd.models import architecture_record, default_genotype

TRAIN_STAGES = ("data", *(f"forward: {s}" for s in STAGES if s != "other"), "forward: other", "backward", "optimizer step")


def profile_training_step(
    config: FsdConfig, architecture: dict[str, Any] | None = None, iterations: int = 20, warmup: int = 3, device: str = "cpu"
) -> dict[str, float]:
    """Milliseconds per iteration in each of :data:`TRAIN_STAGES`, and ``"total"``."""
    context = init_distributed(device)
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(config, architecture or architecture_record(genotype=default_genotype()), Path(scratch), context, progress=False)
        model = trainer.network
        model.train()
        parts = detector_parts(model)
        seconds = {name: 0.0 for name in TRAIN_STAGES}
        module_seconds: defaultdict[str, float] = defaultdict(float)
        done = 0
        epoch = 0
        while done < warmup + iterations:
            loader = iter(trainer.batches.loader(epoch))
            epoch += 1
            while done < warmup + iterations:
                started = time.perf_counter()
                try:
                    batch = next(loader)
                except StopIteration:
                    break
                fetched = time.perf_counter()
                timer = StageTimer(trainer.device)
                measuring = done >= warmup
                if measuring:
                    watch_stages(timer, parts)
                images, targets = trainer.to_device(batch)
                forward_started = time.perf_counter()
                losses, _ = trainer.model(images, targets)
                loss = sum(losses.values())
                forwarded = time.perf_counter()
                timer.close()
                trainer.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                backwarded = time.perf_counter()
                torch.nn.utils.clip_grad_norm_(trainer.weights, trainer.recipe.grad_clip)
                trainer.optimizer.step()
                stepped = time.perf_counter()
                if measuring:
                    seconds["data"] += fetched - started
                    seconds["forward: other"] += forwarded - forward_started
                    seconds["backward"] += backwarded - forwarded
                    seconds["optimizer step"] += stepped - backwarded
                    for name, value in timer.seconds.items():
                        module_seconds[name] += value
                done += 1
    stages = {f"forward: {name}": value for name, value in split_stages(module_seconds).items()}
    seconds["forward: other"] = max(seconds["forward: other"] - sum(stages.values()), 0.0)
    seconds.update(stages)
    result = {name: round(1000.0 * seconds[name] / iterations, 2) for name in TRAIN_STAGES}
    result["total"] = round(sum(result.values()), 2)
    return result


def train_profile_markdown(rows: dict[str, dict[str, float]]) -> str:
    """The training step's table (ms per iteration); in training mode the RoI heads' remainder is
    proposal sampling and the losses."""
    return stage_table(rows, TRAIN_STAGES, digits=1, labels={"forward: final post-processing": "forward: RoI sampling + losses"})
