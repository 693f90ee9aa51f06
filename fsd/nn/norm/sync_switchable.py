"""Synchronized Switchable Normalization: SN whose BN statistics span every process's batch.

Under an initialised ``torch.distributed`` with more than one process in the group, training-mode
BN moments are computed over the global batch: each process all-reduces (differentiably, so the
input gradients are those of the global batch) the per-channel sums over its samples of mean_in
and of mean_in^2 + var_in, together with its sample count, and derives mean_bn and var_bn from the
global sums. Processes may hold different numbers of samples and different spatial sizes, since
SN averages per-sample moments. IN and LN are per sample and need no communication; evaluation
uses the running buffers. In a single process, or when scripted, the layer is exactly
:class:`SwitchNorm2d`.

``convert_sync_switchnorm`` swaps every plain ``SwitchNorm2d`` of a model for this layer before
distributed training; ``revert_sync_switchnorm`` swaps back, e.g. before export. Both reuse the
parameter and buffer tensors, so an optimizer built before the swap keeps working.
"""

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from fsd.nn.norm.moments import batch_moments
from fsd.nn.norm.switchable import SwitchNorm2d


class _AllReduceSum(torch.autograd.Function):
    """Sum a tensor over a process group; the gradient is the sum of every process's gradient."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor, group: Any) -> Tensor:
        ctx.group = group
        reduced = tensor.clone()
        dist.all_reduce(reduced, op=dist.ReduceOp.SUM, group=group)
        return reduced

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None]:
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        return grad, None


class SyncSwitchNorm2d(SwitchNorm2d):
    """:class:`SwitchNorm2d` with BN statistics all-reduced over ``process_group``.

    ``process_group`` defaults to the whole world. The layer has the same parameters, buffers and
    state-dict keys as SwitchNorm2d.
    """

    __jit_ignored_attributes__ = ["process_group"]

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.997,
        using_moving_average: bool = True,
        using_bn: bool = True,
        last_gamma: bool = False,
        process_group: Any | None = None,
    ) -> None:
        super().__init__(num_features, eps, momentum, using_moving_average, using_bn, last_gamma)
        self.process_group = process_group

    def _batch_moments(self, mean_in: Tensor, second_moment: Tensor) -> tuple[Tensor, Tensor]:
        if not torch.jit.is_scripting():
            if self._synchronizes():
                return self._global_batch_moments(mean_in, second_moment)
        return batch_moments(mean_in, second_moment)

    @torch.jit.unused
    def _synchronizes(self) -> bool:
        """Whether a process group with more than one member is there to synchronize with."""
        if not (dist.is_available() and dist.is_initialized()):
            return False
        return dist.get_world_size(self.process_group) > 1

    @torch.jit.unused
    def _global_batch_moments(self, mean_in: Tensor, second_moment: Tensor) -> tuple[Tensor, Tensor]:
        """BN moments of the global batch through one differentiable all-reduce of local sums."""
        channels = mean_in.shape[1]
        local_count = torch.full((1,), float(mean_in.shape[0]), dtype=mean_in.dtype, device=mean_in.device)
        local_sums = torch.cat([mean_in.sum(0).reshape(-1), second_moment.sum(0).reshape(-1), local_count])
        global_sums = _AllReduceSum.apply(local_sums, self.process_group)
        count = global_sums[2 * channels]
        mean_bn = (global_sums[:channels] / count).reshape(1, channels, 1)
        second_moment_bn = (global_sums[channels : 2 * channels] / count).reshape(1, channels, 1)
        var_bn = (second_moment_bn - mean_bn**2).clamp(min=0.0)
        return mean_bn, var_bn


def _copy_switchnorm(source: SwitchNorm2d, target: SwitchNorm2d) -> SwitchNorm2d:
    """Give ``target`` the very parameter and buffer tensors of ``source`` and its mode."""
    target.weight = source.weight
    target.bias = source.bias
    target.mean_weight = source.mean_weight
    target.var_weight = source.var_weight
    target.running_mean = source.running_mean
    target.running_var = source.running_var
    target.train(source.training)
    return target


def convert_sync_switchnorm(module: nn.Module, process_group: Any | None = None) -> nn.Module:
    """Return ``module`` with every plain SwitchNorm2d replaced by a SyncSwitchNorm2d.

    Like ``nn.SyncBatchNorm.convert_sync_batchnorm``: children are replaced in place and the
    (possibly new) root is returned; subclasses such as SparseSwitchNorm2d are left alone.
    """
    if type(module) is SwitchNorm2d:
        converted = SyncSwitchNorm2d(
            module.num_features,
            module.eps,
            module.momentum,
            module.using_moving_average,
            module.using_bn,
            module.last_gamma,
            process_group,
        )
        return _copy_switchnorm(module, converted)
    for name, child in module.named_children():
        module.add_module(name, convert_sync_switchnorm(child, process_group))
    return module


def revert_sync_switchnorm(module: nn.Module) -> nn.Module:
    """Return ``module`` with every SyncSwitchNorm2d replaced by a plain SwitchNorm2d."""
    if isinstance(module, SyncSwitchNorm2d):
        reverted = SwitchNorm2d(
            module.num_features,
            module.eps,
            module.momentum,
            module.using_moving_average,
            module.using_bn,
            module.last_gamma,
        )
        return _copy_switchnorm(module, reverted)
    for name, child in module.named_children():
        module.add_module(name, revert_sync_switchnorm(child))
    return module
