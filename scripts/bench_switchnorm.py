"""Time SwitchNorm2d's forward+backward against the unfused textbook formula in the same run.

    python scripts/bench_switchnorm.py [--device cpu|cuda] [--repeats 50]

The "unfused" column computes the same statistics the way the layer did before (separate mean
and var passes, then (x - mean) / sqrt(var + eps) * weight + bias over the full tensor); the
"fused" column is fsd.nn.SwitchNorm2d (one var_mean pass, scale/shift folded on the statistics,
one multiply-add over the tensor). Outputs are checked equal within 1e-5 before timing.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from fsd.nn import SwitchNorm2d


def unfused(layer: SwitchNorm2d, x: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    x3 = x.reshape(n, c, h * w)
    mean_in = x3.mean(-1, keepdim=True)
    var_in = x3.var(-1, keepdim=True)
    mean_ln = mean_in.mean(1, keepdim=True)
    second = var_in + mean_in**2
    var_ln = second.mean(1, keepdim=True) - mean_ln**2
    mean_bn = mean_in.mean(0, keepdim=True)
    var_bn = second.mean(0, keepdim=True) - mean_bn**2
    mw, vw = torch.softmax(layer.mean_weight, 0), torch.softmax(layer.var_weight, 0)
    mean = mw[0] * mean_in + mw[1] * mean_ln + mw[2] * mean_bn
    var = vw[0] * var_in + vw[1] * var_ln + vw[2] * var_bn
    return ((x3 - mean) / torch.sqrt(var + layer.eps)).reshape(n, c, h, w) * layer.weight + layer.bias


def time_ms(fn, x: torch.Tensor, repeats: int, device: torch.device) -> float:  # noqa: ANN001
    samples = []
    for _ in range(repeats + 5):
        x.grad = None
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn(x).sum().backward()
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
    print("| input (N, C, H, W) | unfused ms | fused ms | speed-up |")
    print("| --- | ---: | ---: | ---: |")
    for shape in [(2, 16, 128, 192), (2, 48, 64, 96), (2, 96, 16, 24), (128, 32, 7, 7)]:
        layer = SwitchNorm2d(shape[1]).to(device).train()
        x = torch.randn(shape, device=device, requires_grad=True)
        torch.testing.assert_close(layer(x), unfused(layer, x), atol=1e-5, rtol=1e-5)
        slow = time_ms(lambda t: unfused(layer, t), x, args.repeats, device)  # noqa: B023
        fast = time_ms(layer, x, args.repeats, device)
        print(f"| {shape} | {slow:.3f} | {fast:.3f} | {slow / fast:.2f}x |")


if __name__ == "__main__":
    main()
