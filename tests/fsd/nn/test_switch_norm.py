"""SwitchNorm2d against SN's defining formula (NumPy, float64) and an official-style reference."""

import numpy as np
import pytest
import torch
from torch import nn

from fsd.nn import SwitchNorm2d


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


def sn_formula(x, mean_logits, var_logits, weight, bias, eps, running=None):
    """SN by its definition; ``running`` = (mean, var) per channel selects evaluation mode."""
    n, c, h, w = x.shape
    length = h * w
    flat = x.reshape(n, c, length).astype(np.float64)
    mean_in = flat.mean(axis=2)
    var_in = flat.var(axis=2, ddof=1 if length > 1 else 0)
    mean_ln = mean_in.mean(axis=1, keepdims=True)
    var_ln = (var_in + mean_in**2).mean(axis=1, keepdims=True) - mean_ln**2
    means = [np.broadcast_to(mean_in, (n, c)), np.broadcast_to(mean_ln, (n, c))]
    variances = [np.broadcast_to(var_in, (n, c)), np.broadcast_to(var_ln, (n, c))]
    if len(mean_logits) == 3:
        if running is None:
            mean_bn = mean_in.mean(axis=0, keepdims=True)
            var_bn = (var_in + mean_in**2).mean(axis=0, keepdims=True) - mean_bn**2
        else:
            mean_bn, var_bn = running[0][None, :], running[1][None, :]
        means.append(np.broadcast_to(mean_bn, (n, c)))
        variances.append(np.broadcast_to(var_bn, (n, c)))
    mean = sum(wt * m for wt, m in zip(softmax(mean_logits), means, strict=True))
    var = sum(wt * v for wt, v in zip(softmax(var_logits), variances, strict=True))
    normalized = (flat - mean[:, :, None]) / np.sqrt(var[:, :, None] + eps)
    return normalized.reshape(n, c, h, w) * weight.reshape(1, c, 1, 1) + bias.reshape(1, c, 1, 1)


class OfficialStyleSwitchNorm(nn.Module):
    """SN written the way the official devkit does it (unbiased x.var(-1), in-place running
    updates on .data, nn.Softmax modules), used as an independent reference."""

    def __init__(self, channels, momentum=0.997, moving_average=True, using_bn=True):
        super().__init__()
        self.momentum = momentum
        self.moving_average = moving_average
        self.using_bn = using_bn
        self.weight = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.mean_weight = nn.Parameter(torch.ones(3 if using_bn else 2))
        self.var_weight = nn.Parameter(torch.ones(3 if using_bn else 2))
        if using_bn:
            self.register_buffer("running_mean", torch.zeros(1, channels, 1))
            self.register_buffer("running_var", torch.zeros(1, channels, 1))

    def forward(self, x):
        n, c, h, w = x.size()
        x = x.view(n, c, -1)
        mean_in = x.mean(-1, keepdim=True)
        var_in = x.var(-1, keepdim=True)
        mean_ln = mean_in.mean(1, keepdim=True)
        temp = var_in + mean_in**2
        var_ln = temp.mean(1, keepdim=True) - mean_ln**2
        mean_w = nn.Softmax(0)(self.mean_weight)
        var_w = nn.Softmax(0)(self.var_weight)
        mean = mean_w[0] * mean_in + mean_w[1] * mean_ln
        var = var_w[0] * var_in + var_w[1] * var_ln
        if self.using_bn:
            if self.training:
                mean_bn = mean_in.mean(0, keepdim=True)
                var_bn = temp.mean(0, keepdim=True) - mean_bn**2
                if self.moving_average:
                    self.running_mean.mul_(self.momentum)
                    self.running_mean.add_((1 - self.momentum) * mean_bn.data)
                    self.running_var.mul_(self.momentum)
                    self.running_var.add_((1 - self.momentum) * var_bn.data)
                else:
                    self.running_mean.add_(mean_bn.data)
                    self.running_var.add_(mean_bn.data**2 + var_bn.data)
            else:
                mean_bn, var_bn = self.running_mean, self.running_var
            mean = mean + mean_w[2] * mean_bn
            var = var + var_w[2] * var_bn
        x = (x - mean) / (var + 1e-5).sqrt()
        return x.view(n, c, h, w) * self.weight + self.bias


def randomize(layer: nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype))


def numpy_params(layer: SwitchNorm2d):
    return [
        t.detach().double().numpy().reshape(-1)
        for t in (layer.mean_weight, layer.var_weight, layer.weight, layer.bias)
    ]


@pytest.mark.parametrize("batch", [1, 2, 4])
@pytest.mark.parametrize("size", [1, 3])
@pytest.mark.parametrize("using_bn", [True, False])
def test_training_output_matches_the_defining_formula(batch, size, using_bn):
    layer = SwitchNorm2d(5, using_bn=using_bn).double()
    randomize(layer, seed=batch * 10 + size)
    x = torch.randn(batch, 5, size, size, generator=torch.Generator().manual_seed(size), dtype=torch.float64)
    mean_logits, var_logits, weight, bias = numpy_params(layer)
    expected = sn_formula(x.numpy(), mean_logits, var_logits, weight, bias, 1e-5)
    out = layer.train()(x)
    assert torch.isfinite(out).all()
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("batch", [1, 2, 4])
@pytest.mark.parametrize("size", [1, 4])
def test_evaluation_uses_running_bn_statistics_and_per_sample_in_ln(batch, size):
    layer = SwitchNorm2d(3).double()
    randomize(layer, seed=7)
    with torch.no_grad():
        layer.running_mean.copy_(torch.randn(1, 3, 1, dtype=torch.float64))
        layer.running_var.copy_(torch.rand(1, 3, 1, dtype=torch.float64) + 0.5)
    x = torch.randn(batch, 3, size, size, dtype=torch.float64)
    mean_logits, var_logits, weight, bias = numpy_params(layer)
    running = (layer.running_mean.numpy().reshape(-1), layer.running_var.numpy().reshape(-1))
    expected = sn_formula(x.numpy(), mean_logits, var_logits, weight, bias, 1e-5, running=running)
    before = layer.running_mean.clone()
    out = layer.eval()(x)
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-10, atol=1e-10)
    assert torch.equal(layer.running_mean, before)


@pytest.mark.parametrize("moving_average", [True, False])
@pytest.mark.parametrize("using_bn", [True, False])
def test_several_training_steps_match_the_official_style_reference(moving_average, using_bn):
    ours = SwitchNorm2d(4, momentum=0.9, using_moving_average=moving_average, using_bn=using_bn).double()
    randomize(ours, seed=3)
    official = OfficialStyleSwitchNorm(
        4, momentum=0.9, moving_average=moving_average, using_bn=using_bn
    ).double()
    official.load_state_dict(ours.state_dict(), strict=True)
    generator = torch.Generator().manual_seed(11)
    for batch in (2, 4, 1, 2):
        x = torch.randn(batch, 4, 3, 5, generator=generator, dtype=torch.float64) * 3 + 1
        torch.testing.assert_close(ours(x), official(x), rtol=1e-10, atol=1e-10)
    if using_bn:
        torch.testing.assert_close(ours.running_mean, official.running_mean, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(ours.running_var, official.running_var, rtol=1e-12, atol=1e-12)
        assert ours.running_var.abs().sum() > 0
    x = torch.randn(2, 4, 3, 5, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(ours.eval()(x), official.eval()(x), rtol=1e-10, atol=1e-10)


def test_moving_average_follows_the_sn_momentum_convention():
    layer = SwitchNorm2d(2, momentum=0.75)
    x = torch.randn(4, 2, 3, 3)
    layer(x)
    flat = x.transpose(0, 1).reshape(2, -1)
    # BN statistics of a batch: mean of the per-sample means, second moment from unbiased IN variances
    per_sample = x.reshape(4, 2, 9)
    mean_bn = per_sample.mean(-1).mean(0)
    second = (per_sample.var(-1) + per_sample.mean(-1) ** 2).mean(0)
    torch.testing.assert_close(layer.running_mean.reshape(-1), 0.25 * mean_bn)
    torch.testing.assert_close(layer.running_var.reshape(-1), 0.25 * (second - mean_bn**2))
    torch.testing.assert_close(mean_bn, flat.mean(-1))


def test_accumulated_statistics_finalize_to_mean_and_variance():
    layer = SwitchNorm2d(3, using_moving_average=False)
    batches = [torch.randn(2, 3, 4, 4) * 2 + 1 for _ in range(3)]
    for batch in batches:
        layer(batch)
    layer.finalize_accumulated_statistics(len(batches))
    means, second_moments = [], []
    for batch in batches:
        per_sample = batch.reshape(2, 3, 16)
        means.append(per_sample.mean(-1).mean(0))
        second_moments.append((per_sample.var(-1) + per_sample.mean(-1) ** 2).mean(0))
    mean = torch.stack(means).mean(0)
    torch.testing.assert_close(layer.running_mean.reshape(-1), mean)
    torch.testing.assert_close(layer.running_var.reshape(-1), torch.stack(second_moments).mean(0) - mean**2)
    with pytest.raises(ValueError, match="using_moving_average=False"):
        SwitchNorm2d(3).finalize_accumulated_statistics(3)


@pytest.mark.parametrize("batch", [1, 2])
def test_one_by_one_maps_give_finite_outputs_where_the_official_code_gives_nan(batch):
    x = torch.randn(batch, 4, 1, 1, requires_grad=True)
    official = OfficialStyleSwitchNorm(4)
    with pytest.warns(UserWarning, match="degrees of freedom"):
        assert torch.isnan(official(x)).any()
    layer = SwitchNorm2d(4)
    randomize(layer, seed=5)
    out = layer.train()(x)
    assert torch.isfinite(out).all()
    out.square().sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())
    assert torch.isfinite(layer.running_var).all()
    assert torch.isfinite(layer.eval()(x)).all()


def test_last_gamma_starts_the_layer_at_its_bias():
    layer = SwitchNorm2d(3, last_gamma=True)
    assert torch.equal(layer.weight, torch.zeros(1, 3, 1, 1))
    assert torch.equal(layer.bias, torch.zeros(1, 3, 1, 1))
    assert torch.equal(layer(torch.randn(2, 3, 4, 4)), torch.zeros(2, 3, 4, 4))
    assert torch.equal(SwitchNorm2d(3).weight, torch.ones(1, 3, 1, 1))


@pytest.mark.parametrize("using_bn", [True, False])
def test_official_state_dict_loads_strictly(using_bn):
    channels = 6
    k = 3 if using_bn else 2
    state = {
        "weight": torch.randn(1, channels, 1, 1),
        "bias": torch.randn(1, channels, 1, 1),
        "mean_weight": torch.randn(k),
        "var_weight": torch.randn(k),
    }
    if using_bn:
        state["running_mean"] = torch.randn(1, channels, 1)
        state["running_var"] = torch.rand(1, channels, 1) + 0.1
    layer = SwitchNorm2d(channels, using_bn=using_bn)
    layer.load_state_dict(state, strict=True)
    official = OfficialStyleSwitchNorm(channels, using_bn=using_bn)
    official.load_state_dict(state, strict=True)
    x = torch.randn(2, channels, 5, 5)
    torch.testing.assert_close(layer.eval()(x), official.eval()(x))
    assert {k: tuple(v.shape) for k, v in layer.state_dict().items()} == {
        k: tuple(v.shape) for k, v in state.items()
    }


def test_gradients_match_finite_differences():
    layer = SwitchNorm2d(3).double()
    randomize(layer, seed=2)
    x = torch.randn(2, 3, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: layer(t), (x,))
    assert torch.autograd.gradcheck(lambda t: layer.eval()(t), (x,))


def test_channels_last_input_is_accepted():
    layer = SwitchNorm2d(3)
    x = torch.randn(2, 3, 4, 5)
    torch.testing.assert_close(layer(x.to(memory_format=torch.channels_last)), layer(x))


def test_bad_inputs_and_arguments_raise_clear_errors():
    layer = SwitchNorm2d(3)
    with pytest.raises(ValueError, match="4-D input"):
        layer(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="3 channels but the input has 4"):
        layer(torch.randn(2, 4, 4, 4))
    with pytest.raises(ValueError, match="momentum"):
        SwitchNorm2d(3, momentum=1.5)
    with pytest.raises(ValueError, match="num_features"):
        SwitchNorm2d(0)


@pytest.mark.parametrize("shape", [(1, 3, 5, 5), (4, 48, 32, 32), (400, 8, 7, 7), (2, 16, 1, 1)])
@pytest.mark.parametrize("scripted", [False, True])
def test_inference_uses_one_fused_pass_equal_to_the_reference(shape, scripted):
    """Without gradients on a CPU the affine is the batch-norm kernel's fused pass: equal to the
    defining formula (float64) and to the multiply-add of the gradient path (float32)."""
    layer = SwitchNorm2d(shape[1])
    randomize(layer, seed=3)
    with torch.no_grad():
        layer.running_mean.copy_(torch.randn(1, shape[1], 1))
        layer.running_var.copy_(torch.rand(1, shape[1], 1) + 0.5)
    layer.eval()
    x = torch.randn(shape) * 3 + 1
    runnable = torch.jit.script(layer) if scripted else layer
    with torch.no_grad():
        fused = runnable(x)
        fused_channels_last = runnable(x.contiguous(memory_format=torch.channels_last))
    multiply_add = runnable(x).detach()
    torch.testing.assert_close(fused, multiply_add, rtol=2e-6, atol=2e-6)
    torch.testing.assert_close(fused_channels_last, multiply_add, rtol=2e-6, atol=2e-6)
    double = SwitchNorm2d(shape[1]).double().eval()
    double.load_state_dict({key: value.double() for key, value in layer.state_dict().items()})
    mean_logits, var_logits, weight, bias = numpy_params(double)
    running = (double.running_mean.numpy().reshape(-1), double.running_var.numpy().reshape(-1))
    with torch.no_grad():
        out = double(x.double())
    expected = sn_formula(x.double().numpy(), mean_logits, var_logits, weight, bias, 1e-5, running=running)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-9, atol=1e-9)
