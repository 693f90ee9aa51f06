"""Learning-rate schedule as a pure function of the iteration: linear warm-up, cosine decay.

Being stateless, it resumes exactly: the learning rate at iteration i is the same whether the run
was interrupted or not.
"""

from __future__ import annotations

import math

import torch


def lr_at(iteration: int, total_iters: int, base_lr: float, warmup_iters: int, min_lr_ratio: float) -> float:
    if total_iters <= 0:
        raise ValueError("total_iters must be positive")
    if warmup_iters > 0 and iteration < warmup_iters:
        return base_lr * (0.001 + 0.999 * iteration / warmup_iters)
    span = max(total_iters - warmup_iters, 1)
    progress = min(max((iteration - warmup_iters) / span, 0.0), 1.0)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return base_lr * (min_lr_ratio + (1.0 - min_lr_ratio) * cosine)


def apply_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's lr to ``lr`` times the group's ``lr_scale`` (default 1)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
