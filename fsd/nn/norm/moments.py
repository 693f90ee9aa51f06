"""Moment helpers shared by the normalizers of this package (SN and its variants, BIN, ILN).

Statistics are computed in float32 when the input is float16/bfloat16 (autocast or a half model),
so mixed precision does not lose the variance to cancellation; other dtypes are kept as they are.

Mean and variance come from two vectorised reductions, the sum of x and the sum of x squared
(without gradients, the square is never materialised: ``vector_norm``); on a CPU torch's
``var_mean`` / ``var`` kernels are about 20x slower (docs/benchmarks.md, "Speed on the CPU") and
were a third of the detector's inference time. E[x^2] - E[x]^2 loses precision where the mean
dwarfs the spread (relative error about 6e-8 * mean^2 / var in float32), so rows with
mean^2 > 100 var get an exact two-pass variance of their own; elsewhere the result agrees with
``var`` to about 1e-5 relative (6e-8 * 100).
"""

import torch
from torch import Tensor


def statistics_dtype(x: Tensor) -> torch.dtype:
    """The dtype to compute normalization statistics in: float32 for half inputs, else x's dtype."""
    if x.dtype == torch.float16 or x.dtype == torch.bfloat16:
        return torch.float32
    return x.dtype


def row_moments(rows: Tensor, unbiased: bool, cancellation_ratio: float = 100.0) -> tuple[Tensor, Tensor]:
    """Mean and variance of each row of an (R, L) tensor, shaped (R, 1) (see the module docstring).

    ``unbiased`` divides by L - 1 instead of L; a single element (L == 1) gets the biased
    variance, 0, rather than NaN. Rows whose mean^2 exceeds ``cancellation_ratio`` times their
    variance get the exact two-pass variance.
    """
    length = rows.shape[1]
    mean = rows.mean(1, keepdim=True)
    if rows.requires_grad:
        square = (rows * rows).mean(1, keepdim=True)
    else:
        square = torch.linalg.vector_norm(rows, 2, 1, True) ** 2 / length
    variance = (square - mean * mean).clamp(min=0.0)
    risky = mean * mean > cancellation_ratio * variance
    if bool(risky.any()):
        index = torch.nonzero(risky.flatten()).flatten()
        picked = rows.index_select(0, index)
        exact = (picked - mean.index_select(0, index)).square().mean(1, keepdim=True)
        variance = variance.index_copy(0, index, exact)
    if unbiased and length > 1:
        variance = variance * (length / (length - 1))
    return mean, variance


def moments(x: Tensor, first_dim: int, unbiased: bool) -> tuple[Tensor, Tensor]:
    """Mean and variance over every axis from ``first_dim`` on, shaped like x with those axes
    kept as 1 (for instance ``first_dim`` 2 of (N, C, H, W): per sample and channel)."""
    length = 1
    for size in x.shape[first_dim:]:
        length *= size
    mean, variance = row_moments(x.reshape(-1, length), unbiased)
    shape = list(x.shape[:first_dim]) + [1] * (x.dim() - first_dim)
    return mean.reshape(shape), variance.reshape(shape)


def instance_moments(x: Tensor, cancellation_ratio: float = 100.0) -> tuple[Tensor, Tensor]:
    """Mean and variance of every (n, c) plane of an (N, C, H, W) tensor, both shaped (N, C, 1),
    read in x's own memory format (a channels-last x is never copied).

    The variance is unbiased (divided by H * W - 1), as the official Switchable Normalization
    code computes it (``x.var(-1)`` over the flattened plane). A single element (an N x C x 1 x 1
    map) has no unbiased variance; it gets the biased one, 0, instead of the NaN the official code
    produces. Planes whose mean^2 exceeds ``cancellation_ratio`` times their variance get the
    exact two-pass variance (see the module docstring).
    """
    channels = x.shape[1]
    length = x.shape[2] * x.shape[3]
    mean = x.mean((2, 3))
    if x.requires_grad:
        square = (x * x).mean((2, 3))
    else:
        square = torch.linalg.vector_norm(x, 2, (2, 3)) ** 2 / length
    variance = (square - mean * mean).clamp(min=0.0)
    risky = (mean * mean > cancellation_ratio * variance).flatten()
    if bool(risky.any()):
        index = torch.nonzero(risky).flatten()
        planes = x[index // channels, index % channels]
        centred = planes - mean.flatten()[index].reshape(-1, 1, 1)
        exact = centred.square().mean((1, 2))
        variance = variance.flatten().index_copy(0, index, exact).reshape(variance.shape)
    if length > 1:
        variance = variance * (length / (length - 1))
    return mean.unsqueeze(2), variance.unsqueeze(2)


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


def plane_affine(x: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
    """``x * scale + shift`` with one (scale, shift) pair per (n, c) plane of a contiguous
    (N, C, H, W) x (``scale`` and ``shift`` hold N x C values), in one pass over x.

    It is torch's batch-norm inference kernel run over the N x C planes as channels, with mean 0,
    variance 1 and eps 0, so the kernel's per-channel factor and offset are exactly ``scale`` and
    ``shift``: one vectorised multiply-add per element and one parallel region, where a multiply
    then an add read and write x twice and synchronise the CPU threads twice (the barriers that
    cost most when a core is shared; docs/benchmarks.md). Differentiable like the multiply-add.
    """
    planes = x.shape[0] * x.shape[1]
    flat = x.reshape(1, planes, x.shape[2] * x.shape[3])
    zeros = torch.zeros(planes, dtype=x.dtype, device=x.device)
    ones = torch.ones(planes, dtype=x.dtype, device=x.device)
    out = torch.batch_norm(flat, scale.reshape(planes), shift.reshape(planes), zeros, ones, False, 0.0, 0.0, False)
    return out.reshape(x.shape)
