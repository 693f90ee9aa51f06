"""How a run optimises network weights: the ``train`` or ``search`` section as loop settings.

:class:`Recipe` is what the training loop needs (optimizer, learning-rate schedule, clipping,
precision, epochs and batches, checkpoint cadence); ``for_training`` and ``for_search`` are the
one place each config section becomes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from fsd.config import SearchSection, TrainSection
from fsd.nn import norm_parameter_groups


@dataclass(frozen=True)
class Recipe:
    optimizer: Literal["sgd", "adamw"]
    lr: float
    momentum: float
    weight_decay: float
    #: learning-rate factor of the normalization mixing weights (SN's softmax logits, gates)
    norm_mix_lr_scale: float
    warmup_iters: int
    min_lr_ratio: float
    grad_clip: float
    #: bf16 autocast (CUDA only)
    amp: bool
    epochs: int
    batch_size: int
    max_iters_per_epoch: int | None
    checkpoint_every_iters: int

    @classmethod
    def for_training(cls, train: TrainSection) -> Recipe:
        return cls(
            optimizer=train.optimizer,
            lr=train.lr,
            momentum=train.momentum,
            weight_decay=train.weight_decay,
            norm_mix_lr_scale=train.norm_mix_lr_scale,
            warmup_iters=train.warmup_iters,
            min_lr_ratio=train.min_lr_ratio,
            grad_clip=train.grad_clip,
            amp=train.amp,
            epochs=train.epochs,
            batch_size=train.batch_size,
            max_iters_per_epoch=train.max_iters_per_epoch,
            checkpoint_every_iters=train.checkpoint_every_iters,
        )

    @classmethod
    def for_search(cls, search: SearchSection) -> Recipe:
        """The supernet's weight recipe (the architecture weights have their own optimizer)."""
        return cls(
            optimizer=search.weight_optimizer,
            lr=search.weight_lr,
            momentum=search.weight_momentum,
            weight_decay=search.weight_decay,
            norm_mix_lr_scale=1.0,
            warmup_iters=search.weight_warmup_iters,
            min_lr_ratio=search.weight_min_lr_ratio,
            grad_clip=search.grad_clip,
            amp=False,
            epochs=search.epochs,
            batch_size=search.batch_size,
            max_iters_per_epoch=search.max_iters_per_epoch,
            checkpoint_every_iters=search.checkpoint_every_iters,
        )

    def optimizer_for(self, model: nn.Module, exclude: frozenset[int] = frozenset()) -> torch.optim.Optimizer:
        """The weight optimizer over ``model``'s parameters but those whose ``id`` is in ``exclude``,
        with no weight decay on normalization parameters (:func:`fsd.nn.norm_parameter_groups`)."""
        groups = norm_parameter_groups(model, self.weight_decay, mix_lr_scale=self.norm_mix_lr_scale)
        for group in groups:
            group["params"] = [p for p in group["params"] if id(p) not in exclude]
        groups = [group for group in groups if group["params"]]
        if self.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=self.lr, momentum=self.momentum)
        return torch.optim.AdamW(groups, lr=self.lr)
