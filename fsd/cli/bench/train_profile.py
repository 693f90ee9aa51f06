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
from pathlib import Path
from typing import Any

import torch

from fsd.cli.bench.profile import STAGES, StageTimer, _norms_within
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
        parts = {
            "transform": model.transform,
            "backbone": model.backbone,
            "neck": model.neck,
            "rpn": model.rpn,
            "roi_heads": model.roi_heads,
            "roi_align": model.roi_heads.box_roi_pool,
            "box_head": model.roi_heads.box_head,
            "predictor": model.roi_heads.box_predictor,
            "slice_position": model.roi_heads.slice_position,
        }
        seconds = {name: 0.0 for name in TRAIN_STAGES}
        forward_parts = {name: 0.0 for name in parts}
        norm_seconds = {name: 0.0 for name in ("backbone", "neck", "rpn", "box_head", "predictor")}
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
                    for name, module in parts.items():
                        timer.watch(name, module)
                    for name in norm_seconds:
                        for norm in _norms_within(parts[name]):
                            timer.watch(f"norm:{name}", norm)
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
                    for name in forward_parts:
                        forward_parts[name] += timer.seconds[name]
                    for name in norm_seconds:
                        norm_seconds[name] += timer.seconds[f"norm:{name}"]
                done += 1
    s = forward_parts
    stages = {
        "forward: transform": s["transform"],
        "forward: backbone convolutions": s["backbone"] - norm_seconds["backbone"],
        "forward: normalization statistics": sum(norm_seconds.values()),
        "forward: neck": s["neck"] - norm_seconds["neck"],
        "forward: RPN + post-processing": s["rpn"] - norm_seconds["rpn"],
        "forward: RoI align": s["roi_align"],
        "forward: RoI head + graph": s["box_head"] + s["predictor"] + s["slice_position"] - norm_seconds["box_head"] - norm_seconds["predictor"],
        "forward: final post-processing": s["roi_heads"] - s["roi_align"] - s["box_head"] - s["predictor"] - s["slice_position"],
    }
    seconds["forward: other"] = max(seconds["forward: other"] - sum(stages.values()), 0.0)
    seconds.update(stages)
    result = {name: round(1000.0 * seconds[name] / iterations, 2) for name in TRAIN_STAGES}
    result["total"] = round(sum(result.values()), 2)
    return result


def train_profile_markdown(rows: dict[str, dict[str, float]]) -> str:
    names = list(rows)
    lines = ["| stage | " + " | ".join(names) + " |", "|" + " --- |" * (len(names) + 1)]
    for stage in (*TRAIN_STAGES, "total"):
        cells = []
        for name in names:
            value, total = rows[name].get(stage, 0.0), rows[name]["total"]
            cells.append(f"{value:.1f} ms" if stage == "total" else f"{value:.1f} ms ({100 * value / max(total, 1e-9):.0f}%)")
        lines.append(f"| {stage.replace('forward: final post-processing', 'forward: RoI sampling + losses')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
