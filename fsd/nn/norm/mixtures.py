"""Gated two-normalizer mixtures: Batch-Instance Norm (BIN) and Instance-Layer Norm (ILN).

BIN (Nam & Kim, 2018): ``gate * BN(x) + (1 - gate) * IN(x)`` with a per-channel gate in [0, 1],
then a per-channel affine. BN keeps running statistics with ``nn.BatchNorm2d``'s conventions
(momentum 0.1 is the weight of the new batch; the running variance is unbiased). The gate starts
at 1 (pure BN), as in the official code. The official code clips the gate to [0, 1] after every
optimizer step; here the forward pass uses the gate clamped to [0, 1] (always valid, and safe
when a layer runs several times per step), and :func:`clip_batch_instance_gates` projects the
stored gates back into [0, 1]: call it after each optimizer step to get the official behaviour,
in which a gate sitting at a bound can leave it again at once.

ILN: ``s * IN(x) + (1 - s) * LN(x)`` with s = sigmoid(gate_logit) per channel, which stays in
(0, 1) and is differentiable everywhere, unlike BIN's clipping; the mix is not normalized any
more, so a group norm without affine (16 groups, or the largest divisor of C below that) follows,
then a per-channel affine. gate_logit starts at 0, i.e. an even mix (the paper's rho = 0.5).

IN, LN and BN use biased variances here (the convention of torch's own norms). Statistics are
computed in float32 for half inputs and the output has the input's dtype.
"""


import torch
from torch import Tensor, nn

from fsd.nn.norm.arguments import check_layer_arguments
from fsd.nn.norm.groups import group_count
from fsd.nn.norm.moments import check_4d, moments, statistics_dtype


def _check_channels(x: Tensor, num_features: int, layer: str) -> None:
    check_4d(x, layer)
    if x.shape[1] != num_features:
        raise ValueError(
            layer + " has " + str(num_features) + " channels but the input has " + str(x.shape[1])
        )


def _standardize(x: Tensor, mean: Tensor, var: Tensor, eps: float) -> Tensor:
    return (x - mean) / torch.sqrt(var + eps)


def _per_channel(values: Tensor) -> Tensor:
    return values.reshape(1, -1, 1, 1)


class BatchInstanceNorm2d(nn.Module):
    """Batch-Instance Normalization over (N, C, H, W) batches.

    Parameters ``weight``, ``bias`` and ``gate`` (the BN share) have shape (C,); buffers
    ``running_mean`` and ``running_var`` are BN's running statistics.
    """

    __constants__ = ["num_features", "eps", "momentum"]

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        check_layer_arguments(num_features, eps, momentum, "weight of the new batch")
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.gate = nn.Parameter(torch.ones(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"

    def clip_gates_(self) -> None:
        """Project the stored gates onto [0, 1] (the official post-step clipping)."""
        with torch.no_grad():
            self.gate.clamp_(0.0, 1.0)

    def forward(self, x: Tensor) -> Tensor:
        _check_channels(x, self.num_features, "BatchInstanceNorm2d")
        values = x.to(statistics_dtype(x))
        if self.training:
            mean_bn = values.mean((0, 2, 3))
            var_bn = torch.var(values, (0, 2, 3), False)
            self._update_running_statistics(mean_bn, var_bn, x.numel() // x.shape[1])
        else:
            mean_bn = self.running_mean.to(values.dtype)
            var_bn = self.running_var.to(values.dtype)
        batch_normalized = _standardize(values, _per_channel(mean_bn), _per_channel(var_bn), self.eps)
        mean_in, var_in = moments(values, 2, False)
        instance_normalized = _standardize(values, mean_in, var_in, self.eps)
        gate = _per_channel(self.gate.clamp(0.0, 1.0))
        mixed = gate * batch_normalized + (1.0 - gate) * instance_normalized
        return (mixed * _per_channel(self.weight) + _per_channel(self.bias)).to(x.dtype)

    def _update_running_statistics(self, mean_bn: Tensor, var_bn: Tensor, count: int) -> None:
        with torch.no_grad():
            unbiased_var = var_bn * (count / (count - 1)) if count > 1 else var_bn
            self.running_mean.mul_(1.0 - self.momentum).add_(self.momentum * mean_bn.detach())
            self.running_var.mul_(1.0 - self.momentum).add_(self.momentum * unbiased_var.detach())


class InstanceLayerNorm2d(nn.Module):
    """Instance-Layer Normalization over (N, C, H, W) batches.

    Parameters ``weight``, ``bias`` and ``gate_logit`` (sigmoid gives the IN share) have shape
    (C,); ``groups`` is the group count of the group norm applied after the mix.
    """

    __constants__ = ["num_features", "eps", "groups"]

    def __init__(self, num_features: int, eps: float = 1e-5, max_groups: int = 16) -> None:
        super().__init__()
        check_layer_arguments(num_features, eps)
        self.num_features = num_features
        self.eps = eps
        self.groups = group_count(num_features, max_groups)
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.gate_logit = nn.Parameter(torch.zeros(num_features))

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, groups={self.groups}"

    def forward(self, x: Tensor) -> Tensor:
        _check_channels(x, self.num_features, "InstanceLayerNorm2d")
        values = x.to(statistics_dtype(x))
        mean_in, var_in = moments(values, 2, False)
        mean_ln, var_ln = moments(values, 1, False)
        instance_normalized = _standardize(values, mean_in, var_in, self.eps)
        layer_normalized = _standardize(values, mean_ln, var_ln, self.eps)
        share_in = _per_channel(torch.sigmoid(self.gate_logit))
        mixed = share_in * instance_normalized + (1.0 - share_in) * layer_normalized
        grouped = self._group_standardize(mixed)
        return (grouped * _per_channel(self.weight) + _per_channel(self.bias)).to(x.dtype)

    def _group_standardize(self, x: Tensor) -> Tensor:
        """Group norm without affine; unlike F.group_norm it accepts a single value per group."""
        N, C, H, W = x.shape
        grouped = x.reshape(N, self.groups, (C // self.groups) * H * W)
        mean, var = moments(grouped, 2, False)
        return _standardize(grouped, mean, var, self.eps).reshape(N, C, H, W)


def clip_batch_instance_gates(model: nn.Module) -> None:
    """Project the gate of every BatchInstanceNorm2d in ``model`` onto [0, 1]; call after each
    optimizer step."""
    for module in model.modules():
        if isinstance(module, BatchInstanceNorm2d):
            module.clip_gates_()
