"""How big a network is: parameter count and FLOPs of one eval-mode forward pass.

FLOPs are counted with ``torch.utils.flop_counter`` (a multiply-accumulate is 2 FLOPs) for a
random CT-like image, RPN and RoI head included.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def forward_flops(model: nn.Module, channels: int, height: int, width: int) -> int:
    """FLOPs of one eval-mode forward pass of a ``channels x height x width`` image.

    Parameters are frozen while counting: the counter's module tracker hooks every module input
    that requires grad, and a parameter passed on as an input (the graph module reads the
    classifier's weights) has no grad function under ``no_grad``.
    """
    model.eval()
    image = torch.rand(channels, height, width, generator=torch.Generator().manual_seed(0))
    trainable = [p for p in model.parameters() if p.requires_grad]
    for parameter in trainable:
        parameter.requires_grad_(False)
    try:
        counter = FlopCounterMode(display=False)
        with counter:
            model([image])
    finally:
        for parameter in trainable:
            parameter.requires_grad_(True)
    return int(counter.get_total_flops())
