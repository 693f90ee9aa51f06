"""Feature pyramid neck that keeps the stride-4 level (P2) for tiny lesions."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fsd.nn import make_norm

#: names of the pyramid levels, strides 4, 8, 16, 32
LEVEL_NAMES: tuple[str, ...] = ("p2", "p3", "p4", "p5")


class FeaturePyramid(nn.Module):
    """Top-down FPN: lateral 1x1 convs, nearest upsampling and addition, 3x3 output convs + norm."""

    def __init__(self, in_channels: Sequence[int], out_channels: int, norm: str) -> None:
        super().__init__()
        if len(in_channels) != len(LEVEL_NAMES):
            raise ValueError(f"the neck takes {len(LEVEL_NAMES)} feature maps, got {len(in_channels)}")
        self.lateral = nn.ModuleList([nn.Conv2d(c, out_channels, 1) for c in in_channels])
        self.output = nn.ModuleList(
            [
                nn.Sequential(nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), make_norm(norm, out_channels))
                for _ in in_channels
            ]
        )
        self.out_channels = out_channels
        self.level_names: list[str] = list(LEVEL_NAMES)

    def forward(self, features: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        laterals: list[torch.Tensor] = []
        for index, conv in enumerate(self.lateral):
            laterals.append(conv(features[index]))
        merged: list[torch.Tensor] = [laterals[-1]]
        for index in range(len(laterals) - 2, -1, -1):
            upper = F.interpolate(merged[0], size=laterals[index].shape[-2:], mode="nearest")
            merged.insert(0, laterals[index] + upper)
        result: dict[str, torch.Tensor] = {}
        for index, conv in enumerate(self.output):
            result[self.level_names[index]] = conv(merged[index])
        return result
