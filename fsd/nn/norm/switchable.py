"""Switchable Normalization (SN): a learned softmax mix of IN, LN and BN statistics.

Parameter and buffer names, shapes and semantics follow the official implementation
(github.com/switchablenorms/Switchable-Normalization, devkit/ops/switchable_norm.py), so its
checkpoints load with ``load_state_dict(strict=True)``:

    weight (1, C, 1, 1)    bias (1, C, 1, 1)    mean_weight, var_weight (3,), or (2,) without BN
    running_mean, running_var (1, C, 1) buffers, only when BN is used

The forward pass views x as (N, C, L) with L = H * W and computes:

    IN   mean_in, var_in per (n, c) over L; var_in is unbiased, as in the official code
    LN   mean_ln = mean over c of mean_in;  var_ln = mean over c of (var_in + mean_in^2) - mean_ln^2
    BN   training: mean_bn = mean over n of mean_in; var_bn = mean over n of (var_in + mean_in^2)
         - mean_bn^2; evaluation: the running buffers. IN and LN stay per sample in evaluation.

and mixes them with softmax(mean_weight) and softmax(var_weight), order [IN, LN, BN]:
``(x - mean) / sqrt(var + eps) * weight + bias``.

Differences from the official code, all deliberate: a 1 x 1 map (L == 1) has variance 0 instead
of NaN; statistics are computed in float32 for half inputs and the output has the input's dtype;
the derived LN/BN variances are clamped at 0 against rounding; the layer scripts with
``torch.jit.script``. ``momentum`` follows SN's convention,
``running = momentum * running + (1 - momentum) * batch`` (the opposite of ``nn.BatchNorm2d``).
Note that the official ``SwitchNorm2d`` defaults to momentum 0.9 while its 1-D and 3-D siblings
(and this layer) default to 0.997.
"""

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from fsd.nn.norm.arguments import check_layer_arguments
from fsd.nn.norm.moments import batch_moments, check_4d, instance_moments, plane_affine, statistics_dtype

#: names of the statistics an SN-like layer mixes, in the order of its importance weights
NORMALIZER_NAMES: tuple[str, str, str] = ("IN", "LN", "BN")


class SwitchNorm2d(nn.Module):
    """Switchable Normalization over (N, C, H, W) batches.

    Args:
        num_features: C, the number of channels.
        eps: added to the variance before the square root.
        momentum: weight of the old value in the running-statistics update (SN convention).
        using_moving_average: update the BN running statistics as a moving average; when False
            they accumulate sums over batches (``running_mean += mean_bn``,
            ``running_var += mean_bn**2 + var_bn``), to be turned into averages with
            :meth:`finalize_accumulated_statistics` before evaluation.
        using_bn: include BN statistics (3 normalizers) or mix only IN and LN (2).
        last_gamma: initialise ``weight`` to 0 (for the last norm of a residual branch).
    """

    __constants__ = ["num_features", "eps", "momentum", "using_moving_average", "using_bn", "last_gamma"]

    if TYPE_CHECKING:
        # For type checkers only: a class-level Optional annotation would make TorchScript type the
        # buffers as Optional attributes, which a scripted module leaves out of its state_dict.
        running_mean: Tensor | None
        running_var: Tensor | None

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.997,
        using_moving_average: bool = True,
        using_bn: bool = True,
        last_gamma: bool = False,
    ) -> None:
        super().__init__()
        check_layer_arguments(num_features, eps, momentum, "SN convention: weight of the old value")
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.using_moving_average = using_moving_average
        self.using_bn = using_bn
        self.last_gamma = last_gamma
        self.weight = nn.Parameter(torch.empty(1, num_features, 1, 1))
        self.bias = nn.Parameter(torch.empty(1, num_features, 1, 1))
        num_normalizers = 3 if using_bn else 2
        self.mean_weight = nn.Parameter(torch.ones(num_normalizers))
        self.var_weight = nn.Parameter(torch.ones(num_normalizers))
        if using_bn:
            self.register_buffer("running_mean", torch.zeros(1, num_features, 1))
            self.register_buffer("running_var", torch.zeros(1, num_features, 1))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official initialisation: zero running statistics, weight 1 (0 with last_gamma), bias 0."""
        with torch.no_grad():
            if self.running_mean is not None and self.running_var is not None:
                self.running_mean.zero_()
                self.running_var.zero_()
            self.weight.fill_(0.0 if self.last_gamma else 1.0)
            self.bias.zero_()
            self.mean_weight.fill_(1.0)
            self.var_weight.fill_(1.0)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"using_moving_average={self.using_moving_average}, using_bn={self.using_bn}, "
            f"last_gamma={self.last_gamma}"
        )

    def importance_weights(self) -> tuple[Tensor, Tensor]:
        """Softmax importance of the mean and variance statistics, order [IN, LN, BN]."""
        return torch.softmax(self.mean_weight, 0), torch.softmax(self.var_weight, 0)

    def forward(self, x: Tensor) -> Tensor:
        mean_weights, var_weights = self.importance_weights()
        return self._mixed_forward(x, mean_weights, var_weights)

    def finalize_accumulated_statistics(self, num_batches: int) -> None:
        """Turn sums accumulated with ``using_moving_average=False`` into a mean and a variance.

        Run the model in training mode over ``num_batches`` batches after zeroing the running
        buffers, then call this once: running_mean becomes the average batch mean and running_var
        the average second moment minus the squared mean.
        """
        if self.using_moving_average:
            raise ValueError("finalize_accumulated_statistics applies only when using_moving_average=False")
        if num_batches < 1:
            raise ValueError(f"num_batches must be at least 1, got {num_batches}")
        running_mean, running_var = self._running_buffers()
        with torch.no_grad():
            running_mean.div_(num_batches)
            running_var.div_(num_batches).sub_(running_mean**2).clamp_(min=0.0)

    def _check_input(self, x: Tensor) -> None:
        layer = "switchable normalization"
        if not torch.jit.is_scripting():
            layer = type(self).__name__
        check_4d(x, layer)
        if x.shape[1] != self.num_features:
            raise ValueError(
                "the layer has " + str(self.num_features) + " channels but the input has " + str(x.shape[1])
            )

    def _mixed_forward(self, x: Tensor, mean_weights: Tensor, var_weights: Tensor) -> Tensor:
        """Normalize x with the statistics mixed by the given importance weights."""
        self._check_input(x)
        values = x.to(statistics_dtype(x))
        mean_in, var_in = instance_moments(values)
        mean_ln = mean_in.mean(1, keepdim=True)
        second_moment = var_in + mean_in**2
        var_ln = (second_moment.mean(1, keepdim=True) - mean_ln**2).clamp(min=0.0)
        mean = mean_weights[0] * mean_in + mean_weights[1] * mean_ln
        var = var_weights[0] * var_in + var_weights[1] * var_ln
        if self.using_bn:
            mean_bn, var_bn = self._bn_moments(mean_in, second_moment)
            mean = mean + mean_weights[2] * mean_bn
            var = var + var_weights[2] * var_bn
        return self._normalize(values, mean, var, x)

    def _normalize(self, values: Tensor, mean: Tensor, var: Tensor, x: Tensor) -> Tensor:
        """(x - mean) / sqrt(var + eps), then the per-channel affine; returns x's dtype and
        memory format.

        Folded into one multiply-add over x: scale = weight / sqrt(var + eps) and
        shift = bias - mean * scale are computed on the (N, C, 1) statistics first; without
        gradients on a CPU the multiply-add is one fused pass (:func:`plane_affine`).
        """
        channels = self.num_features
        scale = self.weight.reshape(1, channels, 1) * torch.rsqrt(var + self.eps)
        shift = self.bias.reshape(1, channels, 1) - mean * scale
        if not torch.is_grad_enabled() and not values.is_cuda and values.is_contiguous():
            # inference on a CPU: one fused pass (and one parallel region) instead of two
            return plane_affine(values, scale, shift).to(x.dtype)
        # a multiply then an in-place add on its fresh output: torch's broadcasting addcmul is
        # several times slower on a CPU (docs/benchmarks.md, "Speed on the CPU")
        return (values * scale.unsqueeze(3)).add_(shift.unsqueeze(3)).to(x.dtype)

    def _running_buffers(self) -> tuple[Tensor, Tensor]:
        running_mean = self.running_mean
        running_var = self.running_var
        if running_mean is None or running_var is None:
            raise RuntimeError("this layer was built with using_bn=False and keeps no BN statistics")
        return running_mean, running_var

    def _bn_moments(self, mean_in: Tensor, second_moment: Tensor) -> tuple[Tensor, Tensor]:
        """BN mean and variance: of the batch (updating the running buffers) or the running ones."""
        running_mean, running_var = self._running_buffers()
        if self.training:
            mean_bn, var_bn = self._batch_moments(mean_in, second_moment)
            self._update_running_statistics(running_mean, running_var, mean_bn, var_bn)
            return mean_bn, var_bn
        return running_mean.to(mean_in.dtype), running_var.to(mean_in.dtype)

    def _batch_moments(self, mean_in: Tensor, second_moment: Tensor) -> tuple[Tensor, Tensor]:
        """BN moments of the local batch, derived from the per-sample IN moments."""
        return batch_moments(mean_in, second_moment)

    def _update_running_statistics(
        self, running_mean: Tensor, running_var: Tensor, mean_bn: Tensor, var_bn: Tensor
    ) -> None:
        with torch.no_grad():
            batch_mean = mean_bn.detach()
            batch_var = var_bn.detach()
            if self.using_moving_average:
                running_mean.mul_(self.momentum).add_((1.0 - self.momentum) * batch_mean)
                running_var.mul_(self.momentum).add_((1.0 - self.momentum) * batch_var)
            else:
                running_mean.add_(batch_mean)
                running_var.add_(batch_mean**2 + batch_var)
