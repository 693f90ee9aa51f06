"""BatchInstanceNorm2d and InstanceLayerNorm2d against their defining formulas (NumPy, float64)."""

import numpy as np
import pytest
import torch
from torch import nn

from fsd.nn import BatchInstanceNorm2d, InstanceLayerNorm2d, clip_batch_instance_gates, group_count

EPS = 1e-5


def standardize(x, axes):
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS)


def per_channel(values):
    return values.detach().double().numpy().reshape(1, -1, 1, 1)


def bin_formula(x, layer, running=None):
    if running is None:
        batch_normalized = standardize(x, (0, 2, 3))
    else:
        batch_normalized = (x - running[0].reshape(1, -1, 1, 1)) / np.sqrt(
            running[1].reshape(1, -1, 1, 1) + EPS
        )
    gate = np.clip(per_channel(layer.gate), 0.0, 1.0)
    mixed = gate * batch_normalized + (1 - gate) * standardize(x, (2, 3))
    return mixed * per_channel(layer.weight) + per_channel(layer.bias)


def iln_formula(x, layer, groups):
    share_in = 1.0 / (1.0 + np.exp(-per_channel(layer.gate_logit)))
    mixed = share_in * standardize(x, (2, 3)) + (1 - share_in) * standardize(x, (1, 2, 3))
    n, c, h, w = x.shape
    grouped = standardize(mixed.reshape(n, groups, c // groups, h, w), (2, 3, 4)).reshape(n, c, h, w)
    return grouped * per_channel(layer.weight) + per_channel(layer.bias)


def randomize(layer, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.copy_(
                torch.rand(parameter.shape, generator=generator, dtype=parameter.dtype) * 1.6 - 0.3
            )


@pytest.mark.parametrize("batch", [1, 2, 4])
@pytest.mark.parametrize("size", [1, 3])
def test_batch_instance_norm_matches_its_formula_in_training_and_evaluation(batch, size):
    layer = BatchInstanceNorm2d(4).double()
    randomize(layer, seed=batch + size)
    x = (
        torch.randn(batch, 4, size, size, generator=torch.Generator().manual_seed(size), dtype=torch.float64)
        + 1
    )
    expected = bin_formula(x.numpy(), layer)
    out = layer.train()(x)
    assert torch.isfinite(out).all()
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-9, atol=1e-9)
    running = (layer.running_mean.numpy(), layer.running_var.numpy())
    np.testing.assert_allclose(
        layer.eval()(x).detach().numpy(), bin_formula(x.numpy(), layer, running), rtol=1e-9, atol=1e-9
    )


def test_batch_instance_norm_with_gate_one_is_batchnorm_and_with_gate_zero_is_instancenorm():
    bin_layer = BatchInstanceNorm2d(3, momentum=0.2)
    batch_norm = nn.BatchNorm2d(3, momentum=0.2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        x = torch.randn(4, 3, 5, 5, generator=generator) * 3 + 2
        torch.testing.assert_close(bin_layer(x), batch_norm(x))
    torch.testing.assert_close(bin_layer.running_mean, batch_norm.running_mean)
    torch.testing.assert_close(bin_layer.running_var, batch_norm.running_var)
    bin_layer.eval()
    batch_norm.eval()
    torch.testing.assert_close(bin_layer(x), batch_norm(x))
    with torch.no_grad():
        bin_layer.gate.zero_()
    torch.testing.assert_close(bin_layer(x), nn.functional.instance_norm(x, eps=EPS))


def test_gates_outside_the_unit_interval_act_clipped_and_clip_helper_projects_them():
    layer = BatchInstanceNorm2d(2)
    with torch.no_grad():
        layer.gate.copy_(torch.tensor([1.7, -0.5]))
    x = torch.randn(3, 2, 4, 4)
    clipped = BatchInstanceNorm2d(2)
    with torch.no_grad():
        clipped.gate.copy_(torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(layer(x), clipped(x))
    model = nn.Sequential(nn.Conv2d(2, 2, 1), layer)
    clip_batch_instance_gates(model)
    assert torch.equal(layer.gate.detach(), torch.tensor([1.0, 0.0]))


def test_batch_instance_gate_learns_inside_the_unit_interval():
    layer = BatchInstanceNorm2d(2)
    with torch.no_grad():
        layer.gate.fill_(0.5)
    layer(torch.randn(3, 2, 4, 4) * torch.tensor([1.0, 3.0]).view(1, 2, 1, 1)).pow(3).sum().backward()
    assert layer.gate.grad.abs().min() > 0


@pytest.mark.parametrize(("channels", "groups"), [(6, 6), (32, 16), (48, 16), (20, 10), (7, 7), (1, 1)])
def test_group_counts_are_the_largest_divisor_up_to_the_limit(channels, groups):
    assert group_count(channels, 16) == groups
    assert InstanceLayerNorm2d(channels).groups == groups
    assert group_count(48, 32) == 24 and group_count(64, 32) == 32 and group_count(3, 32) == 3


@pytest.mark.parametrize("batch", [1, 2, 4])
@pytest.mark.parametrize("size", [1, 3])
@pytest.mark.parametrize("channels", [6, 32])
def test_instance_layer_norm_matches_its_formula(batch, size, channels):
    layer = InstanceLayerNorm2d(channels).double()
    randomize(layer, seed=channels + size)
    with torch.no_grad():
        layer.gate_logit.mul_(4)
    x = torch.randn(
        batch, channels, size, size, generator=torch.Generator().manual_seed(batch), dtype=torch.float64
    )
    expected = iln_formula(x.numpy(), layer, group_count(channels, 16))
    for mode in (True, False):
        out = layer.train(mode)(x)
        assert torch.isfinite(out).all()
        np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-8, atol=1e-8)


def test_instance_layer_norm_starts_as_an_even_mix_and_learns_its_gate():
    layer = InstanceLayerNorm2d(4)
    assert torch.equal(torch.sigmoid(layer.gate_logit), torch.full((4,), 0.5))
    layer(torch.randn(2, 4, 3, 3) * torch.arange(1.0, 5.0).view(1, 4, 1, 1)).pow(3).sum().backward()
    assert layer.gate_logit.grad.abs().sum() > 0


@pytest.mark.parametrize("layer_type", [BatchInstanceNorm2d, InstanceLayerNorm2d])
def test_mixtures_reject_bad_inputs_with_clear_messages(layer_type):
    layer = layer_type(4)
    with pytest.raises(ValueError, match="4-D input"):
        layer(torch.randn(4, 3, 3))
    with pytest.raises(ValueError, match="4 channels but the input has 2"):
        layer(torch.randn(1, 2, 3, 3))
