"""The fast normalization moments agree with exact ones, with and without gradients, also where
the mean dwarfs the spread (the rows that get an exact two-pass variance)."""

from __future__ import annotations

import pytest
import torch

from fsd.nn.norm.moments import moments, row_moments


@pytest.mark.parametrize("offset", [0.0, 3.0, 300.0])
@pytest.mark.parametrize("shape", [(2, 5, 49), (3, 4, 1024), (1, 7, 1)])
@pytest.mark.parametrize("unbiased", [True, False])
def test_moments_match_the_exact_ones(shape, offset, unbiased):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=generator) * torch.rand(shape[:2] + (1,), generator=generator) + offset
    mean, var = moments(x, 2, unbiased)
    exact = x.double()
    assert torch.allclose(mean.double(), exact.mean(2, keepdim=True), rtol=1e-6, atol=1e-6 * (1 + offset))
    expected = exact.var(2, unbiased=unbiased and shape[2] > 1, keepdim=True)
    assert torch.allclose(var.double(), expected, rtol=1e-4, atol=1e-7), (var.double() - expected).abs().max()
    with torch.enable_grad():
        grad_mean, grad_var = moments(x.clone().requires_grad_(True), 2, unbiased)
    assert torch.allclose(grad_var.detach(), var, rtol=2e-5, atol=1e-7)


def test_the_moments_have_the_exact_gradient():
    x = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda rows: row_moments(rows, True), (x,))
    shifted = (torch.randn(3, 6, dtype=torch.float64) + 1e3).requires_grad_(True)  # the exact two-pass rows
    assert torch.autograd.gradcheck(lambda rows: row_moments(rows, True), (shifted,))


def test_moments_over_several_axes_and_under_torchscript():
    x = torch.randn(2, 3, 4, 5) + 10.0
    mean, var = moments(x, 1, False)
    assert mean.shape == (2, 1, 1, 1) and torch.allclose(var.flatten(), x.reshape(2, -1).var(1, unbiased=False), rtol=1e-4)
    scripted = torch.jit.script(moments)
    assert all(torch.equal(a, b) for a, b in zip(scripted(x, 2, True), moments(x, 2, True)))


def test_switchable_layers_keep_a_channels_last_input_channels_last_and_equal():
    from fsd.nn import SparseSwitchNorm2d, SwitchNorm2d

    torch.manual_seed(0)
    x = torch.randn(2, 8, 9, 7) * 2 + 1
    for layer in (SwitchNorm2d(8), SparseSwitchNorm2d(8)):
        for mode in (True, False):
            layer.train(mode)
            expected = layer(x)
            output = layer(x.to(memory_format=torch.channels_last))
            assert output.is_contiguous(memory_format=torch.channels_last), type(layer).__name__
            assert torch.allclose(output, expected, atol=1e-5)
