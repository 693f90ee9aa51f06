"""`fsd bench complexity`: parameters and FLOPs of FSD against the ResNet-FPN baselines
(counted by :mod:`fsd.models.complexity`)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from fsd.config import FsdConfig
from fsd.models import DetectorConfig, Genotype, build_baseline, build_detector, default_genotype
from fsd.models.complexity import count_parameters, forward_flops


@dataclass(frozen=True)
class Complexity:
    name: str
    parameters: int
    gflops: float
    backbone_parameters: int


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
