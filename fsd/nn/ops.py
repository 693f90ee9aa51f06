"""The operation table: named candidate operations for the architecture search.

Every op is built by ``build_op(name, in_channels, out_channels, stride, norm)`` and maps
(N, in_channels, H, W) to (N, out_channels, ceil(H / stride), ceil(W / stride)). Ops that
preserve the shape add a residual connection, so a stack of them trains from scratch. The search
(``search/``) mixes these ops; a derived network instantiates exactly one per position. The
names, the default candidates and ``check_op_names`` live without torch in :mod:`fsd.nn_names`
(re-exported here), so a config is validated without importing torch.

Names:
    conv_3x3, conv_5x5                 conv - norm - ReLU
    sep_conv_3x3, sep_conv_5x5         depthwise k x k - norm - ReLU - pointwise - norm - ReLU
    dil_conv_3x3, dil_conv_5x5         depthwise k x k dilation 2 - pointwise - norm - ReLU
    ir_k{3,5}_e{3,6}                   inverted residual (MobileNetV2): expand 1x1, depthwise k x k,
                                       project 1x1, expansion 3 or 6
    skip                               identity (a strided 1x1 conv + norm when the shape changes)
    zero                               zeros (drops an edge of a cell)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from fsd.nn import make_norm
from fsd.nn_names import (  # noqa: F401  (re-exported: the names live without torch)
    DEFAULT_BACKBONE_OPS,
    DEFAULT_HEAD_OPS,
    OP_NAMES,
    PARAMETER_FREE_OPS,
    check_op_names,
)

OpBuilder = Callable[[int, int, int, str], nn.Module]


def _same_padding(kernel: int, dilation: int) -> int:
    return dilation * (kernel - 1) // 2


class ConvNormAct(nn.Module):
    """conv k x k - norm - ReLU, with a residual when the shape is preserved."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: str, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel, stride, _same_padding(kernel, 1), bias=False
        )
        self.norm = make_norm(norm, out_channels)
        self.act = nn.ReLU(inplace=True)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.norm(self.conv(x)))
        if self.residual:
            out = out + x
        return out


class SepConv(nn.Module):
    """Depthwise-separable conv: depthwise k x k - norm - ReLU - pointwise - norm - ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: str, kernel: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(
            in_channels, in_channels, kernel, stride, _same_padding(kernel, 1), groups=in_channels, bias=False
        )
        self.norm1 = make_norm(norm, in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.norm2 = make_norm(norm, out_channels)
        self.act = nn.ReLU(inplace=True)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.norm1(self.depthwise(x)))
        out = self.act(self.norm2(self.pointwise(out)))
        if self.residual:
            out = out + x
        return out


class DilConv(nn.Module):
    """Dilated depthwise k x k (dilation 2) - pointwise - norm - ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: str, kernel: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(
            in_channels,
            in_channels,
            kernel,
            stride,
            _same_padding(kernel, 2),
            dilation=2,
            groups=in_channels,
            bias=False,
        )
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.norm = make_norm(norm, out_channels)
        self.act = nn.ReLU(inplace=True)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.norm(self.pointwise(self.depthwise(x))))
        if self.residual:
            out = out + x
        return out


class InvertedResidual(nn.Module):
    """MobileNetV2 block: expand 1x1 - norm - ReLU6 - depthwise k x k - norm - ReLU6 - project 1x1 - norm."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, norm: str, kernel: int, expansion: int
    ) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.expand = nn.Conv2d(in_channels, hidden, 1, bias=False)
        self.norm1 = make_norm(norm, hidden)
        self.depthwise = nn.Conv2d(
            hidden, hidden, kernel, stride, _same_padding(kernel, 1), groups=hidden, bias=False
        )
        self.norm2 = make_norm(norm, hidden)
        self.project = nn.Conv2d(hidden, out_channels, 1, bias=False)
        self.norm3 = make_norm(norm, out_channels)
        self.act = nn.ReLU6(inplace=True)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.norm1(self.expand(x)))
        out = self.act(self.norm2(self.depthwise(out)))
        out = self.norm3(self.project(out))
        if self.residual:
            out = out + x
        return out


class Skip(nn.Module):
    """Identity; a strided 1x1 conv + norm when the stride or width changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: str) -> None:
        super().__init__()
        self.identity = stride == 1 and in_channels == out_channels
        if self.identity:
            self.project = nn.Identity()
        else:
            self.project = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), make_norm(norm, out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(x)


class Zero(nn.Module):
    """Outputs zeros of the op's output shape: a dropped edge."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height = (x.shape[2] + self.stride - 1) // self.stride
        width = (x.shape[3] + self.stride - 1) // self.stride
        return x.new_zeros((x.shape[0], self.out_channels, height, width))


def _conv(kernel: int) -> OpBuilder:
    return lambda i, o, s, n: ConvNormAct(i, o, s, n, kernel)


def _sep(kernel: int) -> OpBuilder:
    return lambda i, o, s, n: SepConv(i, o, s, n, kernel)


def _dil(kernel: int) -> OpBuilder:
    return lambda i, o, s, n: DilConv(i, o, s, n, kernel)


def _ir(kernel: int, expansion: int) -> OpBuilder:
    return lambda i, o, s, n: InvertedResidual(i, o, s, n, kernel, expansion)


OPS: dict[str, OpBuilder] = {
    "conv_3x3": _conv(3),
    "conv_5x5": _conv(5),
    "sep_conv_3x3": _sep(3),
    "sep_conv_5x5": _sep(5),
    "dil_conv_3x3": _dil(3),
    "dil_conv_5x5": _dil(5),
    "ir_k3_e3": _ir(3, 3),
    "ir_k3_e6": _ir(3, 6),
    "ir_k5_e3": _ir(5, 3),
    "ir_k5_e6": _ir(5, 6),
    "skip": lambda i, o, s, n: Skip(i, o, s, n),
    "zero": lambda i, o, s, n: Zero(i, o, s),
}


def build_op(name: str, in_channels: int, out_channels: int, stride: int, norm: str) -> nn.Module:
    """Instantiate op ``name``; raises ValueError naming the known ops for an unknown name."""
    if name not in OPS:
        raise ValueError(f"unknown op {name!r}; known ops: {', '.join(OPS)}")
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride}")
    return OPS[name](in_channels, out_channels, stride, norm)
