"""SparseSwitchNorm2d: SparsestMax mixing, the radius schedule, freezing and frozen statistics."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

import fsd.nn.norm.sparse_switchable as sparse_switchable_module
from fsd.nn import SparseSwitchNorm2d, sparsemax, sparsestmax, update_sparse_radius

IN, LN, BN = 0, 1, 2
EPS = 1e-5


def statistics(x: np.ndarray, running=None):
    """SN's IN, LN and BN means and variances of x (N, C, H, W), each broadcast to (N, C)."""
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w)
    mean_in = flat.mean(axis=2)
    var_in = flat.var(axis=2, ddof=1 if h * w > 1 else 0)
    mean_ln = np.repeat(flat.reshape(n, -1).mean(axis=1, keepdims=True), c, axis=1)
    var_ln = np.repeat(((var_in + mean_in**2).mean(axis=1) - mean_ln[:, 0] ** 2)[:, None], c, axis=1)
    if running is None:
        mean_bn = np.repeat(flat.transpose(1, 0, 2).reshape(c, -1).mean(axis=1)[None], n, axis=0)
        var_bn = np.repeat((var_in + mean_in**2).mean(axis=0)[None], n, axis=0) - mean_bn**2
    else:
        mean_bn = np.repeat(running[0][None], n, axis=0)
        var_bn = np.repeat(running[1][None], n, axis=0)
    return [mean_in, mean_ln, mean_bn], [var_in, var_ln, var_bn]


def normalize(x, mean, var, layer):
    weight = layer.weight.detach().double().numpy().reshape(1, -1, 1, 1)
    bias = layer.bias.detach().double().numpy().reshape(1, -1, 1, 1)
    return (x - mean[:, :, None, None]) / np.sqrt(var[:, :, None, None] + EPS) * weight + bias


def make_layer(mean_logits, var_logits, channels=3):
    layer = SparseSwitchNorm2d(channels).double()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator))
        layer.bias.copy_(torch.randn(layer.bias.shape, generator=generator))
        layer.mean_weight.copy_(torch.tensor(mean_logits))
        layer.var_weight.copy_(torch.tensor(var_logits))
    return layer


def one_hot_logits(index):
    logits = [0.0, 0.0, 0.0]
    logits[index] = 5.0
    return logits


@pytest.mark.parametrize("batch", [1, 2, 4])
@pytest.mark.parametrize("size", [1, 3])
@pytest.mark.parametrize("radius", [0.0, 0.5])
def test_mixed_output_uses_sparsestmax_weights(batch, size, radius):
    layer = make_layer([1.0, 1.2, 0.9], [0.2, 0.1, 0.4])
    layer.set_radius(radius)
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(batch), dtype=torch.float64)
    mean_w = sparsestmax(layer.mean_weight.detach(), radius).numpy()
    var_w = sparsestmax(layer.var_weight.detach(), radius).numpy()
    means, variances = statistics(x.numpy())
    expected = normalize(
        x.numpy(),
        sum(w * m for w, m in zip(mean_w, means, strict=True)),
        sum(w * v for w, v in zip(var_w, variances, strict=True)),
        layer,
    )
    np.testing.assert_allclose(layer(x).detach().numpy(), expected, rtol=1e-9, atol=1e-9)
    assert not layer.is_frozen()


def test_radius_zero_weights_are_sparsemax_and_logits_get_gradients():
    layer = make_layer([1.0, 1.2, 0.9], [0.2, 0.1, 0.4])
    mean_w, var_w = layer.importance_weights()
    torch.testing.assert_close(mean_w, sparsemax(layer.mean_weight))
    layer(torch.randn(2, 3, 4, 4, dtype=torch.float64)).pow(3).sum().backward()
    assert layer.mean_weight.grad.abs().sum() > 0 and layer.var_weight.grad.abs().sum() > 0


def test_update_sparse_radius_grows_linearly_over_training():
    model = nn.Sequential(SparseSwitchNorm2d(2), nn.Sequential(SparseSwitchNorm2d(2)), nn.BatchNorm2d(2))
    assert update_sparse_radius(model, 0.25) == 0.25
    assert [model[0].current_radius(), model[1][0].current_radius()] == [0.25, 0.25]
    assert float(model[0].radius) == 0.25
    update_sparse_radius(model, 1.0)
    assert model[1][0].current_radius() == 1.0
    for progress in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="progress"):
            update_sparse_radius(model, progress)
    with pytest.raises(ValueError, match="radius"):
        model[0].set_radius(-1.0)


def test_a_large_radius_makes_the_layer_freeze_on_its_top_logits():
    layer = make_layer([1.0, 1.2, 0.9], [0.3, 0.1, 0.2])
    layer.set_radius(0.7)
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    layer(x)
    assert not layer.is_frozen(), "[.1, .9, 0] is not one-hot yet"
    layer.eval()
    layer.set_radius(1.0)
    layer(x)
    assert not layer.is_frozen(), "evaluation never freezes a layer"
    layer.train()
    layer(x)
    assert layer.is_frozen()
    assert int(layer.mean_choice) == LN and int(layer.var_choice) == IN
    mean_w, var_w = layer.importance_weights()
    torch.testing.assert_close(mean_w, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(var_w, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))


CHOICES = [(IN, IN), (LN, LN), (BN, BN), (IN, BN), (LN, IN), (BN, LN)]


@pytest.mark.parametrize(("mean_choice", "var_choice"), CHOICES)
@pytest.mark.parametrize("batch", [1, 2, 4])
@pytest.mark.parametrize("size", [1, 3])
def test_frozen_output_is_the_pure_selected_formula(mean_choice, var_choice, batch, size):
    layer = make_layer(one_hot_logits(mean_choice), one_hot_logits(var_choice))
    generator = torch.Generator().manual_seed(size)
    layer(torch.randn(4, 3, 3, 3, generator=generator, dtype=torch.float64))  # freezes
    assert (int(layer.mean_choice), int(layer.var_choice)) == (mean_choice, var_choice)
    x = torch.randn(batch, 3, size, size, generator=generator, dtype=torch.float64) * 2 + 0.5
    running_before = (layer.running_mean.clone(), layer.running_var.clone())

    means, variances = statistics(x.numpy())
    expected = normalize(x.numpy(), means[mean_choice], variances[var_choice], layer)
    np.testing.assert_allclose(layer(x).detach().numpy(), expected, rtol=1e-9, atol=1e-9)

    uses_bn = BN in (mean_choice, var_choice)
    assert torch.equal(layer.running_mean, running_before[0]) != uses_bn
    running = (layer.running_mean.numpy().reshape(-1), layer.running_var.numpy().reshape(-1))
    means, variances = statistics(x.numpy(), running=running)
    expected = normalize(x.numpy(), means[mean_choice], variances[var_choice], layer)
    np.testing.assert_allclose(layer.eval()(x).detach().numpy(), expected, rtol=1e-9, atol=1e-9)


def test_frozen_layer_computes_no_mixing_and_no_bn_statistics_it_does_not_use(monkeypatch):
    layer = make_layer(one_hot_logits(LN), one_hot_logits(IN))
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    layer(x)
    assert layer.is_frozen()
    calls = {"sparsestmax": 0, "bn": 0}

    def counting_sparsestmax(*args):
        calls["sparsestmax"] += 1
        return sparsestmax(*args)

    def counting_bn_moments(*args):
        calls["bn"] += 1
        raise AssertionError("BN statistics computed by a layer that did not select BN")

    monkeypatch.setattr(sparse_switchable_module, "sparsestmax", counting_sparsestmax)
    monkeypatch.setattr(layer, "_bn_moments", counting_bn_moments)
    running_mean = layer.running_mean.clone()
    for _ in range(3):
        layer(x)
    assert calls == {"sparsestmax": 0, "bn": 0}
    assert torch.equal(layer.running_mean, running_mean)


def test_frozen_logits_receive_no_gradient_and_parameters_still_do():
    layer = make_layer(one_hot_logits(BN), one_hot_logits(LN))
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    layer(x)
    assert layer.is_frozen()
    layer(x).pow(3).sum().backward()
    assert layer.mean_weight.grad is None and layer.var_weight.grad is None
    assert layer.weight.grad.abs().sum() > 0 and torch.isfinite(x.grad).all()


def test_frozen_state_survives_a_state_dict_round_trip():
    layer = make_layer(one_hot_logits(IN), one_hot_logits(BN))
    layer.set_radius(0.3)
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    layer(x)
    restored = SparseSwitchNorm2d(3).double()
    restored.load_state_dict(layer.state_dict(), strict=True)
    assert restored.is_frozen() and restored.current_radius() == pytest.approx(0.3)
    torch.testing.assert_close(restored.eval()(x), layer.eval()(x))


@pytest.mark.parametrize("freeze", [False, True])
def test_scripted_layer_equals_eager_layer(freeze):
    layer = make_layer(
        one_hot_logits(LN) if freeze else [1.0, 1.2, 0.9], [0.0, 0.0, 5.0] if freeze else [0.1, 0.2, 0.3]
    )
    layer.set_radius(0.4)
    scripted = torch.jit.script(copy.deepcopy(layer))
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(scripted(x), layer(x))
    assert layer.is_frozen() == freeze
    assert bool(scripted.is_frozen()) == freeze
    torch.testing.assert_close(scripted.running_mean, layer.running_mean)
    torch.testing.assert_close(scripted.eval()(x), layer.eval()(x))
