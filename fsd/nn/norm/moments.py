"""Moment helpers shared by the switchable normalizers (SN, synchronized SN, sparse SN).

Statistics are computed in float32 when the input is float16/bfloat16 (autocast or a half model),
so mixed precision does not lose the variance to cancellation; other dtypes are kept as they are.
"""

import torch
from torch import Tensor


def statistics_dtype(x: Tensor) -> torch.dtype:
    """The dtype to compute normalization statistics in: float32 for half inputs, else x's dtype."""
    if x.dtype == torch.float16 or x.dtype == torch.bfloat16:
        return torch.float32
    return x.dtype


def instance_moments(x3: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and variance over the last axis of an (N, C, L) tensor, both shaped (N, C, 1).

    The variance is unbiased (divided by L - 1), as the official Switchable Normalization code
    computes it (``x.var(-1)``). A single element (L == 1, e.g. an N x C x 1 x 1 map) has no
    unbiased variance; it gets the biased one, 0, instead of the NaN the official code produces.
    """
    variance, mean = torch.var_mean(x3, [2], x3.shape[-1] > 1, True)  # one pass over x
    return mean, variance


def batch_moments(mean_in: Tensor, second_moment: Tensor) -> tuple[Tensor, Tensor]:
    """BN mean and variance (1, C, 1) of a batch from its per-sample IN moments (N, C, 1).

    ``second_moment`` is var_in + mean_in**2. Every sample weighs the same, as in official SN;
    the variance is clamped at 0 against rounding in the difference of moments.
    """
    mean_bn = mean_in.mean(0, keepdim=True)
    var_bn = (second_moment.mean(0, keepdim=True) - mean_bn**2).clamp(min=0.0)
    return mean_bn, var_bn


def check_4d(x: Tensor, layer: str) -> None:
    """Raise a ValueError naming ``layer`` unless x is a 4-D (N, C, H, W) batch."""
    if x.dim() != 4:
        raise ValueError(
            layer
            + " expects a 4-D input (N, C, H, W), got a "
            + str(x.dim())
            + "-D tensor of shape "
            + str(list(x.shape))
        )
