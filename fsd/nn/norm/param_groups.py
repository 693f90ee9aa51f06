"""Optimizer parameter groups that keep weight decay off biases and normalization parameters.

Weight decay on a norm's affine parameters or on its normalizer-mixing weights fights the
normalization itself (the SN paper trains its importance weights without decay), so a model's
trainable parameters are split into three groups for ``torch.optim``:

    "decay"      ordinary weights (convolutions, linear layers, embeddings): ``weight_decay``
    "no_decay"   every bias, and the weight/bias of every normalization layer: no decay
    "mixing"     normalizer-mixing weights (SN/SSN mean_weight and var_weight, the BIN gate,
                 the ILN gate logit): no decay and ``lr_scale = mix_lr_scale``

Every group carries ``name``, ``weight_decay`` and ``lr_scale`` (the trainer multiplies its
learning rate by ``lr_scale``); empty groups are left out.
"""

from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from fsd.nn.norm.mixtures import BatchInstanceNorm2d, InstanceLayerNorm2d
from fsd.nn.norm.switchable import SwitchNorm2d

_TORCH_NORM_TYPES: tuple[type[nn.Module], ...] = (
    _BatchNorm,
    _InstanceNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.RMSNorm,
    nn.LocalResponseNorm,
)

# SwitchNorm2d covers its subclasses SyncSwitchNorm2d and SparseSwitchNorm2d
_MIXING_PARAMETERS: tuple[tuple[type[nn.Module], frozenset[str]], ...] = (
    (SwitchNorm2d, frozenset({"mean_weight", "var_weight"})),
    (BatchInstanceNorm2d, frozenset({"gate"})),
    (InstanceLayerNorm2d, frozenset({"gate_logit"})),
)


def is_norm_layer(module: nn.Module) -> bool:
    """Whether ``module`` is a normalization layer: this package's or one of torch's."""
    return isinstance(module, _TORCH_NORM_TYPES) or any(
        isinstance(module, norm_type) for norm_type, _ in _MIXING_PARAMETERS
    )


def _mixing_parameter_names(module: nn.Module) -> frozenset[str]:
    for norm_type, names in _MIXING_PARAMETERS:
        if isinstance(module, norm_type):
            return names
    return frozenset()


def norm_parameter_groups(
    model: nn.Module, weight_decay: float, mix_lr_scale: float = 1.0
) -> list[dict[str, Any]]:
    """Split the trainable parameters of ``model`` into decay / no-decay / mixing groups.

    Each trainable parameter lands in exactly one group, even when modules share it;
    parameters with ``requires_grad=False`` are left out.
    """
    if not weight_decay >= 0.0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if not mix_lr_scale > 0.0:
        raise ValueError(f"mix_lr_scale must be > 0, got {mix_lr_scale}")
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    mixing: list[torch.nn.Parameter] = []
    seen: set[int] = set()
    for module in model.modules():
        mixing_names = _mixing_parameter_names(module)
        norm = is_norm_layer(module)
        for name, parameter in module.named_parameters(recurse=False):
            if not parameter.requires_grad or id(parameter) in seen:
                continue
            seen.add(id(parameter))
            if name in mixing_names:
                mixing.append(parameter)
            elif norm or name == "bias":
                no_decay.append(parameter)
            else:
                decay.append(parameter)
    groups = [
        {"name": "decay", "params": decay, "weight_decay": weight_decay, "lr_scale": 1.0},
        {"name": "no_decay", "params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0},
        {"name": "mixing", "params": mixing, "weight_decay": 0.0, "lr_scale": mix_lr_scale},
    ]
    return [group for group in groups if group["params"]]
