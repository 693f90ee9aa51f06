"""`fsd bench speed`: latency and throughput of the FSD detector against torchvision's Faster
R-CNN ResNet-50-FPN at the same input, in one run.

For each model, precision (fp32, and bf16 or fp16 autocast on a GPU) and mode (eager,
TorchScript) it reports the batch-1 latency p50/p99, the throughput at each batch size, the
peak GPU memory, and the achieved TFLOP/s (FLOPs counted once per image with
``torch.utils.flop_counter``) against the device's peak where known. Timing uses device
synchronisation, warm-up iterations and the median of repeats. On a CPU the same code runs at
reduced sizes, so CI exercises it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fsd.artifacts import load_eager, torchscript
from fsd.models.complexity import forward_flops

#: dense bf16/fp16 tensor-core peak (TFLOP/s) by device-name fragment; fp32 uses tf32 peak / 2
PEAK_TFLOPS: dict[str, float] = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0}


@dataclass
class SpeedRow:
    model: str
    mode: str
    precision: str
    batch: int
    latency_p50_ms: float
    latency_p99_ms: float
    images_per_s: float
    peak_memory_mib: float | None
    tflops: float | None
    peak_fraction: float | None


class TorchvisionBaseline(nn.Module):
    """torchvision's Faster R-CNN R50-FPN, random weights, resized to the benchmark's input size
    so both models see the same pixels; returns ``(losses, detections)`` like FSD."""

    def __init__(self, size: int) -> None:
        super().__init__()
        from torchvision.models.detection import fasterrcnn_resnet50_fpn

        self.model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, min_size=size, max_size=size)

    def forward(self, images: list[torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
        out = self.model(images)
        if isinstance(out, tuple):  # scripted torchvision models return (losses, detections)
            return out
        return {}, out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(call: Callable[[], Any], device: torch.device, warmup: int, repeats: int) -> list[float]:
    """Wall-clock milliseconds of ``repeats`` calls after ``warmup`` calls, synchronised."""
    for _ in range(warmup):
        call()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        _sync(device)
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(int(round(fraction * (len(ordered) - 1))), len(ordered) - 1)
    return ordered[index]


def peak_tflops(device: torch.device, precision: str) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for fragment, peak in PEAK_TFLOPS.items():
        if fragment in name:
            return peak if precision != "fp32" else peak / 2
    return None


def benchmark_model(
    name: str,
    model: nn.Module,
    device: torch.device,
    size: int,
    channels: int,
    batches: Sequence[int],
    precisions: Sequence[str],
    modes: Sequence[str],
    warmup: int,
    repeats: int,
) -> list[SpeedRow]:
    model = model.eval().to(device)
    flops_per_image = forward_flops(model.cpu(), channels, size, size)
    model = model.to(device)
    rows: list[SpeedRow] = []
    generator = torch.Generator().manual_seed(0)
    for mode in modes:
        runnable: nn.Module = torchscript.script(model) if mode == "torchscript" else model
        for precision in precisions:
            dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
            for batch in batches:
                images = [torch.rand(channels, size, size, generator=generator).to(device) for _ in range(batch)]

                def call(
                    images: list[torch.Tensor] = images, dtype: torch.dtype | None = dtype, runnable: nn.Module = runnable
                ) -> Any:
                    with torch.no_grad(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                        return runnable(images)

                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                times = time_calls(call, device, warmup, repeats)
                median = statistics.median(times)
                memory = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
                achieved = flops_per_image * batch / (median / 1000.0) / 1e12
                peak = peak_tflops(device, precision)
                rows.append(
                    SpeedRow(
                        model=name,
                        mode=mode,
                        precision=precision,
                        batch=batch,
                        latency_p50_ms=round(median, 3),
                        latency_p99_ms=round(_percentile(times, 0.99), 3),
                        images_per_s=round(batch / (median / 1000.0), 2),
                        peak_memory_mib=None if memory is None else round(memory, 1),
                        tflops=float(f"{achieved:.4g}"),  # significant digits: CPU rates are tiny
                        peak_fraction=None if peak is None else float(f"{achieved / peak:.4g}"),
                    )
                )
    return rows


def profile_model(
    model: nn.Module, device: torch.device, size: int, channels: int, batches: Sequence[int], precision: str, warmup: int, repeats: int
) -> dict[str, dict[str, float]]:
    """Per-stage milliseconds per image of the eager model at each batch size (see
    :mod:`fsd.cli.bench.profile`)."""
    from fsd.cli.bench.profile import stage_profile

    model = model.eval().to(device)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    generator = torch.Generator().manual_seed(0)
    rows: dict[str, dict[str, float]] = {}
    for batch in batches:
        images = [torch.rand(channels, size, size, generator=generator).to(device) for _ in range(batch)]

        def call(images: list[torch.Tensor] = images) -> Any:
            with torch.no_grad(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                return model(images)

        rows[f"{precision} batch {batch}"] = stage_profile(model, call, device, warmup, repeats, batch)
    return rows


def speed_markdown(rows: Sequence[SpeedRow], device_name: str, size: int) -> str:
    lines = [
        f"Device: {device_name}; input {size}x{size}; latency in ms; throughput in images/s.",
        "",
        "| model | mode | precision | batch | p50 ms | p99 ms | images/s | peak MiB | TFLOP/s | of peak |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.mode} | {r.precision} | {r.batch} | {r.latency_p50_ms:.2f} | {r.latency_p99_ms:.2f} | "
            f"{r.images_per_s:.1f} | {'-' if r.peak_memory_mib is None else f'{r.peak_memory_mib:.0f}'} | "
            f"{'-' if r.tflops is None else f'{r.tflops:.3f}'} | {'-' if r.peak_fraction is None else f'{100 * r.peak_fraction:.1f}%'} |"
        )
    return "\n".join(lines)


def rows_as_dicts(rows: Sequence[SpeedRow]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]


def model_label(path: Path) -> str:
    """A short name for a model given by path: an export directory's name, or the run directory
    holding a checkpoint."""
    return path.parent.name if path.suffix == ".pt" else path.name


def relative_markdown(rows: Sequence[SpeedRow], reference: str) -> str:
    """Each other model's time per image relative to ``reference`` in the same mode, precision
    and batch: 1.15 means 15% slower than the reference."""
    base = {(r.mode, r.precision, r.batch): r for r in rows if r.model == reference}
    lines = [
        f"Time per image relative to {reference} (same run, same input):",
        "",
        "| model | mode | precision | batch | images/s | reference images/s | time vs reference |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        ref = base.get((r.mode, r.precision, r.batch))
        if r.model == reference or ref is None:
            continue
        lines.append(
            f"| {r.model} | {r.mode} | {r.precision} | {r.batch} | {r.images_per_s:.1f} | {ref.images_per_s:.1f} | "
            f"{ref.images_per_s / r.images_per_s:.3f}x |"
        )
    return "\n".join(lines)


def load_fsd_module(model_dir: Path | None, size: int) -> tuple[nn.Module, int]:
    """The exported model's eager network or, without one, the default genotype at the
    synth_bench settings; returns (module, input channels)."""
    from fsd.config import FsdConfig, load_config
    from fsd.models import DetectorConfig, build_detector, default_genotype

    if model_dir is not None:
        loaded = load_eager(model_dir)
        return loaded.module, loaded.card.detector_config.in_channels
    path = Path("configs/synth_bench.yaml")
    fsd_config = load_config(path) if path.is_file() else FsdConfig()
    config = DetectorConfig.from_config(fsd_config)
    torch.manual_seed(0)
    return build_detector(default_genotype(), config), config.in_channels
