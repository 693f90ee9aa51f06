"""Time SwitchNorm2d against the statistics it used to compute with ``var_mean``, in one run.

    python scripts/bench_switchnorm.py [--device cpu|cuda] [--repeats 50]

Columns: "var_mean" computes the IN moments with ``torch.var_mean`` and normalises with one
broadcasting ``addcmul`` (the layer before this change); "shipped" is ``fsd.nn.SwitchNorm2d``
(moments from two vectorised reductions, exact two-pass variance where the mean dwarfs the
spread, a multiply then an in-place add). Both are timed in training mode (forward + backward)
and in eval mode (forward, no gradients), after checking that their outputs agree within 1e-4.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from fsd.nn import SwitchNorm2d
from fsd.nn.norm.moments import batch_moments


def var_mean_layer(layer: SwitchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """The layer's own arithmetic with ``var_mean`` moments and an ``addcmul`` (the old kernel)."""
    n, c, h, w = x.shape
    x3 = x.reshape(n, c, h * w)
    var_in, mean_in = torch.var_mean(x3, [2], h * w > 1, True)
    mean_ln = mean_in.mean(1, keepdim=True)
    second = var_in + mean_in**2
    var_ln = (second.mean(1, keepdim=True) - mean_ln**2).clamp(min=0.0)
    if layer.training:
        mean_bn, var_bn = batch_moments(mean_in, second)
    else:
        mean_bn, var_bn = layer.running_mean, layer.running_var
    mw, vw = layer.importance_weights()
    mean = mw[0] * mean_in + mw[1] * mean_ln + mw[2] * mean_bn
    var = vw[0] * var_in + vw[1] * var_ln + vw[2] * var_bn
    scale = layer.weight.reshape(1, c, 1) * torch.rsqrt(var + layer.eps)
    shift = layer.bias.reshape(1, c, 1) - mean * scale
    return torch.addcmul(shift, x3, scale).reshape(x.shape)


def time_ms(call: Callable[[], None], repeats: int, device: torch.device) -> float:
    samples = []
    for _ in range(repeats + 5):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples[5:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print("| input (N, C, H, W) | train var_mean ms | train shipped ms | speed-up | eval var_mean ms | eval shipped ms | speed-up |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for shape in [(2, 16, 128, 192), (2, 48, 64, 96), (4, 144, 64, 64), (2, 96, 16, 24), (128, 32, 7, 7)]:
        layer = SwitchNorm2d(shape[1]).to(device)
        x = torch.randn(shape, device=device) * 2 + 0.5
        row = []
        for training in (True, False):
            layer.train(training)
            with torch.no_grad():
                torch.testing.assert_close(layer(x), var_mean_layer(layer, x), atol=1e-4, rtol=1e-4)
            if training:
                leaf = x.clone().requires_grad_(True)
                old = time_ms(lambda: var_mean_layer(layer, leaf).sum().backward(), args.repeats, device)  # noqa: B023
                new = time_ms(lambda: layer(leaf).sum().backward(), args.repeats, device)  # noqa: B023
            else:
                with torch.no_grad():
                    old = time_ms(lambda: var_mean_layer(layer, x), args.repeats, device)  # noqa: B023
                    new = time_ms(lambda: layer(x), args.repeats, device)  # noqa: B023
            row += [old, new, old / new]
        print(f"| {shape} | {row[0]:.3f} | {row[1]:.3f} | {row[2]:.2f}x | {row[3]:.3f} | {row[4]:.3f} | {row[5]:.2f}x |")


if __name__ == "__main__":
    main()
