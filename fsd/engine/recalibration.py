"""Batch statistics recomputed after training, before evaluation and export.

Running statistics collected during training are a poor estimate at 2 images per step: they
start at zero and move with momentum over noisy two-image batches. The SN paper's remedy for
inference is to recompute them over many training batches once the weights are fixed: this
module runs the network in training mode, without gradients, over ``num_batches`` batches and
sets every layer's BN statistics to their average:

- SN-like layers (SN, sparse SN; a synchronized SN is recomputed as plain SN on one process)
  use their own batch-average mode (accumulate, then ``finalize_accumulated_statistics``);
- ``nn.BatchNorm2d`` and the BN part of BIN take the cumulative average of the batch statistics
  (momentum 1/k at the k-th batch), as detectron2's PreciseBN does.

Everything else (weights, mixing weights, the global RNG state) is left as it was.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from fsd.artifacts import restore_rng_state, rng_state
from fsd.nn import BatchInstanceNorm2d, SwitchNorm2d

Batch = tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]


def layers_with_batch_statistics(model: nn.Module) -> tuple[list[SwitchNorm2d], list[nn.Module]]:
    """The SN-like layers that mix BN statistics, and the momentum-averaged BN layers."""
    switchable = [m for m in model.modules() if isinstance(m, SwitchNorm2d) and m.using_bn]
    averaged = [m for m in model.modules() if isinstance(m, (nn.modules.batchnorm._BatchNorm, BatchInstanceNorm2d))]
    return switchable, averaged


@torch.no_grad()
def recalibrate_batch_statistics(model: nn.Module, batches: Iterable[Batch], device: torch.device, num_batches: int) -> int:
    """Recompute ``model``'s BN statistics over up to ``num_batches`` training batches (see the
    module docstring); returns how many batches were used (0 when the model has no BN statistics)."""
    switchable, averaged = layers_with_batch_statistics(model)
    if not (switchable or averaged) or num_batches < 1:
        return 0
    saved_rng = rng_state()
    was_training = model.training
    moving = [layer.using_moving_average for layer in switchable]
    momenta = [layer.momentum for layer in averaged]
    for layer in switchable:
        layer.using_moving_average = False
        running_mean, running_var = layer._running_buffers()
        running_mean.zero_()
        running_var.zero_()
    used = 0
    model.train()
    try:
        for images, targets in batches:
            if used >= num_batches:
                break
            used += 1
            for layer in averaged:
                layer.momentum = 1.0 / used
            model([i.to(device) for i in images], [{k: v.to(device) for k, v in t.items()} for t in targets])
        for layer in switchable:
            layer.finalize_accumulated_statistics(max(used, 1))
    finally:
        for layer, flag in zip(switchable, moving):
            layer.using_moving_average = flag
        for layer, momentum in zip(averaged, momenta):
            layer.momentum = momentum
        model.train(was_training)
        restore_rng_state(saved_rng)
    return used
