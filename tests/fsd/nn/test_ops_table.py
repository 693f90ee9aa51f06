"""The search's operation table: shapes, residuals, zero, errors, scriptability."""

from __future__ import annotations

import pytest
import torch

from fsd.nn.ops import OPS, PARAMETER_FREE_OPS, build_op
from fsd.nn_names import DEFAULT_BACKBONE_OPS, DEFAULT_HEAD_OPS, OP_NAMES

REQUIRED = {
    "conv_3x3",
    "conv_5x5",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "ir_k3_e3",
    "ir_k3_e6",
    "ir_k5_e3",
    "ir_k5_e6",
    "skip",
    "zero",
}


def test_table_has_the_required_ops():
    assert REQUIRED <= set(OPS)
    assert PARAMETER_FREE_OPS == {"skip", "zero"}


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("stride, c_in, c_out", [(1, 8, 8), (2, 8, 16), (1, 8, 12)])
def test_every_op_maps_shapes_and_scripts(name: str, stride: int, c_in: int, c_out: int):
    torch.manual_seed(0)
    op = build_op(name, c_in, c_out, stride, "bn").eval()
    x = torch.randn(2, c_in, 15, 16)
    y = op(x)
    assert y.shape == (2, c_out, (15 + stride - 1) // stride, (16 + stride - 1) // stride)
    scripted = torch.jit.script(op)
    assert torch.allclose(scripted(x), y, atol=1e-5)


def test_zero_outputs_zeros_and_skip_is_identity_when_shapes_match():
    x = torch.randn(1, 4, 6, 6)
    assert torch.equal(build_op("zero", 4, 4, 1, "bn")(x), torch.zeros_like(x))
    assert torch.equal(build_op("skip", 4, 4, 1, "bn")(x), x)
    assert sum(p.numel() for p in build_op("skip", 4, 4, 1, "bn").parameters()) == 0


def test_shape_preserving_ops_are_residual():
    op = build_op("conv_3x3", 4, 4, 1, "bn")
    torch.nn.init.zeros_(op.conv.weight)
    op.eval()
    x = torch.randn(1, 4, 5, 5)
    # a zeroed conv leaves relu(norm(0)) + x; with default BN buffers that is x + relu(bias) = x
    assert torch.allclose(op(x), x)


def test_ops_take_the_normalizer_from_the_factory():
    op = build_op("sep_conv_3x3", 8, 8, 1, "gn")
    assert isinstance(op.norm1, torch.nn.GroupNorm)


def test_unknown_op_and_stride_are_clear_errors():
    with pytest.raises(ValueError, match="unknown op 'conv_7x7'"):
        build_op("conv_7x7", 4, 4, 1, "bn")
    with pytest.raises(ValueError, match="stride"):
        build_op("conv_3x3", 4, 4, 3, "bn")


def test_the_table_builds_exactly_the_torch_free_names():
    assert tuple(OPS) == OP_NAMES
    assert set(DEFAULT_BACKBONE_OPS) | set(DEFAULT_HEAD_OPS) <= set(OPS)
