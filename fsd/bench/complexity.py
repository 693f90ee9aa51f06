"""Parameter and FLOP counts of detectors at a given input size.

FLOPs are counted with ``torch.utils.flop_counter`` (multiply-accumulate = 2 FLOPs) for one
eval-mode forward pass of a random CT-like image, RPN and RoI head included.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from fsd.config import FsdConfig
from fsd.models import DetectorConfig, Genotype, build_baseline, build_detector, default_genotype


@dataclass(frozen=True)
class Complexity:
    name: str
    parameters: int
    gflops: float
    backbone_parameters: int


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def forward_flops(model: nn.Module, channels: int, height: int, width: int) -> int:
    """FLOPs of one eval-mode forward pass of a ``channels x height x width`` image.

    Parameters are frozen while counting: the counter's module tracker hooks every module input
    that requires grad, and a parameter passed on as an input (the graph module reads the
    classifier's weights) has no grad function under ``no_grad``.
    """
    model.eval()
    image = torch.rand(channels, height, width, generator=torch.Generator().manual_seed(0))
    trainable = [p for p in model.parameters() if p.requires_grad]
    for parameter in trainable:
        parameter.requires_grad_(False)
    try:
        counter = FlopCounterMode(display=False)
        with counter:
            model([image])
    finally:
        for parameter in trainable:
            parameter.requires_grad_(True)
    return int(counter.get_total_flops())


def complexity_table(config: FsdConfig, genotype: Genotype | None = None, size: int = 512) -> list[Complexity]:
    """FSD (the given or default genotype) and both baselines at ``config.preprocess.num_slices x size x size``."""
    detector_config = DetectorConfig.from_config(config)
    channels = detector_config.in_channels
    models: list[tuple[str, nn.Module]] = [("FSD (" + ("searched" if genotype else "default genotype") + ")", build_detector(genotype or default_genotype(), detector_config))]
    models += [(name, build_baseline(name, detector_config)) for name in ("resnet50_fpn", "resnet18_fpn")]
    rows = []
    for name, model in models:
        rows.append(
            Complexity(
                name=name,
                parameters=count_parameters(model),
                gflops=forward_flops(model, channels, size, size) / 1e9,
                backbone_parameters=count_parameters(model.backbone),
            )
        )
    return rows


def complexity_markdown(rows: list[Complexity], size: int, channels: int) -> str:
    reference = next((r for r in rows if r.name == "resnet50_fpn"), rows[0])
    lines = [
        f"| model | parameters (M) | vs R50-FPN | backbone params (M) | GFLOPs at {channels}x{size}x{size} |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row.name} | {row.parameters / 1e6:.2f} | {100 * row.parameters / reference.parameters:.1f}% | "
            f"{row.backbone_parameters / 1e6:.2f} | {row.gflops:.1f} |"
        )
    return "\n".join(lines)
