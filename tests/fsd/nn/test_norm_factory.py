"""make_norm: every kind builds, matches its formula, scripts, and survives bfloat16/autocast."""

import copy
import typing

import numpy as np
import pytest
import torch
from torch import nn

from fsd import nn_names
from fsd.config import NormKind
from fsd.nn import (
    NORM_KINDS,
    BatchInstanceNorm2d,
    InstanceLayerNorm2d,
    SparseSwitchNorm2d,
    SwitchNorm2d,
    SyncSwitchNorm2d,
    make_norm,
)
from fsd.nn.norm.factory import _BUILDERS

EPS = 1e-5
OWN_KINDS = ("bin", "iln", "sn", "ssn", "syncsn")


def test_norm_kinds_cover_every_configurable_kind():
    assert NORM_KINDS == ("bn", "gn", "in", "ln", "bin", "iln", "sn", "ssn", "syncsn", "none")
    assert set(typing.get_args(NormKind)) <= set(NORM_KINDS)


def test_the_factory_builds_exactly_the_torch_free_kinds():
    assert tuple(_BUILDERS) == NORM_KINDS == nn_names.NORM_KINDS


@pytest.mark.parametrize(
    ("kind", "expected_type"),
    [
        ("bn", nn.BatchNorm2d),
        ("gn", nn.GroupNorm),
        ("in", nn.GroupNorm),
        ("ln", nn.GroupNorm),
        ("bin", BatchInstanceNorm2d),
        ("iln", InstanceLayerNorm2d),
        ("sn", SwitchNorm2d),
        ("ssn", SparseSwitchNorm2d),
        ("syncsn", SyncSwitchNorm2d),
        ("none", nn.Identity),
    ],
)
def test_each_kind_builds_its_layer(kind, expected_type):
    layer = make_norm(kind, 48)
    assert type(layer) is expected_type
    x = torch.randn(2, 48, 3, 3)
    assert layer(x).shape == x.shape


@pytest.mark.parametrize(("channels", "groups"), [(64, 32), (48, 24), (96, 32), (3, 3), (10, 10), (1, 1)])
def test_group_norm_uses_32_groups_or_the_largest_divisor_below(channels, groups):
    layer = make_norm("gn", channels)
    assert layer.num_groups == groups and layer.affine
    assert make_norm("in", channels).num_groups == channels
    assert make_norm("ln", channels).num_groups == 1


def group_formula(x: np.ndarray, groups: int, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    grouped = x.reshape(n, groups, -1)
    normalized = (grouped - grouped.mean(-1, keepdims=True)) / np.sqrt(grouped.var(-1, keepdims=True) + EPS)
    return normalized.reshape(n, c, h, w) * weight.reshape(1, c, 1, 1) + bias.reshape(1, c, 1, 1)


def randomize_affine(layer: nn.Module) -> None:
    with torch.no_grad():
        layer.weight.normal_()
        layer.bias.normal_()


@pytest.mark.parametrize(("kind", "groups"), [("gn", 24), ("in", 48), ("ln", 1)])
@pytest.mark.parametrize("batch", [1, 2, 4])
@pytest.mark.parametrize("size", [1, 3])
def test_group_like_kinds_match_their_formulas(kind, groups, batch, size):
    layer = make_norm(kind, 48).double()
    randomize_affine(layer)
    x = torch.randn(batch, 48, size, size, dtype=torch.float64)
    if batch == 1 and size == 1 and kind == "in":
        with pytest.raises(ValueError, match="more than 1 value"):
            layer(x)  # torch's GroupNorm refuses groups holding a single value
        return
    weight, bias = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    for mode in (True, False):
        out = layer.train(mode)(x).detach().numpy()
        np.testing.assert_allclose(out, group_formula(x.numpy(), groups, weight, bias), rtol=1e-9, atol=1e-9)


def test_in_kind_is_instance_norm_with_affine():
    layer = make_norm("in", 5)
    randomize_affine(layer)
    x = torch.randn(3, 5, 4, 4)
    expected = nn.functional.instance_norm(x, weight=layer.weight, bias=layer.bias, eps=EPS)
    torch.testing.assert_close(layer(x), expected)


@pytest.mark.parametrize("batch", [2, 4])
def test_bn_kind_matches_batch_statistics_in_training_and_running_ones_in_evaluation(batch):
    layer = make_norm("bn", 3).double()
    randomize_affine(layer)
    x = torch.randn(batch, 3, 2, 2, dtype=torch.float64)
    weight, bias = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    per_channel = x.numpy().transpose(1, 0, 2, 3).reshape(3, -1)
    mean, var = per_channel.mean(1), per_channel.var(1)
    expected = (x.numpy() - mean.reshape(1, 3, 1, 1)) / np.sqrt(var.reshape(1, 3, 1, 1) + EPS)
    np.testing.assert_allclose(
        layer(x).detach().numpy(), expected * weight.reshape(1, 3, 1, 1) + bias.reshape(1, 3, 1, 1), rtol=1e-9
    )
    running_mean = 0.1 * mean
    running_var = 0.9 + 0.1 * per_channel.var(1, ddof=1)
    expected = (x.numpy() - running_mean.reshape(1, 3, 1, 1)) / np.sqrt(running_var.reshape(1, 3, 1, 1) + EPS)
    np.testing.assert_allclose(
        layer.eval()(x).detach().numpy(),
        expected * weight.reshape(1, 3, 1, 1) + bias.reshape(1, 3, 1, 1),
        rtol=1e-9,
    )


def test_none_kind_is_the_identity():
    x = torch.randn(2, 4, 3, 3)
    assert make_norm("none", 4)(x) is x


def randomized(kind: str, channels: int) -> nn.Module:
    layer = make_norm(kind, channels)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.add_(torch.rand(parameter.shape, generator=generator) * 0.5)
    return layer


@pytest.mark.parametrize("kind", NORM_KINDS)
def test_every_kind_scripts_and_the_scripted_layer_equals_the_eager_one(kind):
    eager = randomized(kind, 8)
    scripted = torch.jit.script(copy.deepcopy(eager))
    generator = torch.Generator().manual_seed(0)
    for step in range(2):
        x = torch.randn(2, 8, 4, 4, generator=generator)
        torch.testing.assert_close(scripted(x), eager(x), msg=f"training step {step}")
    for name, buffer in eager.named_buffers():
        torch.testing.assert_close(getattr(scripted, name), buffer)
    scripted_state = scripted.state_dict()
    assert scripted_state.keys() == eager.state_dict().keys(), "a scripted layer keeps every buffer in its state dict"
    for name, tensor in eager.state_dict().items():
        torch.testing.assert_close(scripted_state[name], tensor)
    eager.eval()
    scripted.eval()
    torch.testing.assert_close(scripted(x), eager(x))


@pytest.mark.parametrize("kind", NORM_KINDS)
@pytest.mark.parametrize("training", [True, False])
def test_bfloat16_under_autocast_gives_finite_output(kind, training):
    layer = randomized(kind, 8).train(training)
    x = (torch.randn(2, 8, 4, 4) * 50 + 300).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    assert torch.isfinite(out.float()).all()
    if kind in OWN_KINDS:
        assert out.dtype == torch.bfloat16
        # statistics in float32: the result agrees with the float32 computation up to bfloat16 rounding
        reference = copy.deepcopy(layer)(x.float())
        torch.testing.assert_close(out.float(), reference, atol=0.05, rtol=0.02)


@pytest.mark.parametrize("kind", OWN_KINDS)
def test_half_input_without_autocast_keeps_its_dtype(kind):
    layer = randomized(kind, 4)
    out = layer(torch.randn(2, 4, 3, 3).half())
    assert out.dtype == torch.float16 and torch.isfinite(out).all()


def test_unknown_kind_and_bad_width_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown normalization kind 'batchnorm'; valid kinds: bn, gn, in"):
        make_norm("batchnorm", 8)
    with pytest.raises(ValueError, match="at least 1 channel"):
        make_norm("sn", 0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("kind", NORM_KINDS)
def test_every_kind_runs_on_cuda_under_float16_autocast_and_scripts(kind):
    layer = randomized(kind, 8).cuda()
    scripted = torch.jit.script(copy.deepcopy(layer))
    x = torch.randn(2, 8, 4, 4, device="cuda")
    torch.testing.assert_close(scripted(x), layer(x))
    with torch.autocast("cuda", dtype=torch.float16):
        out = layer(x.half())
    assert out.device.type == "cuda" and torch.isfinite(out.float()).all()
    if kind in OWN_KINDS:
        assert out.dtype == torch.float16
