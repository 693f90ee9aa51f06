"""The searchable backbone: a stem and 4 stages of blocks (strides 4, 8, 16, 32).

The structure (widths, blocks per stage, which block is strided) is fixed here; *what* each block
is comes from a block factory. A derived network passes a factory that builds the genotype's op;
the search passes one that builds a mixed op. Outputs are the 4 stage feature maps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from fsd.models.genotype import Genotype
from fsd.nn import make_norm
from fsd.nn.ops import build_op

#: (stage index, block index, in channels, out channels, stride) -> module
BlockFactory = Callable[[int, int, int, int, int], nn.Module]


class Stem(nn.Module):
    """3x3 stride-2 conv - norm - ReLU on the (C, H, W) slice stack."""

    def __init__(self, in_channels: int, out_channels: int, norm: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, 2, 1, bias=False)
        self.norm = make_norm(norm, out_channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class StagedBackbone(nn.Module):
    """Stem (stride 2) then 4 stages; the first block of each stage has stride 2."""

    def __init__(
        self,
        in_channels: int,
        stem_channels: int,
        widths: Sequence[int],
        blocks_per_stage: Sequence[int],
        norm: str,
        block_factory: BlockFactory,
    ) -> None:
        super().__init__()
        if len(widths) != len(blocks_per_stage):
            raise ValueError("widths and blocks_per_stage must have the same length")
        self.stem = Stem(in_channels, stem_channels, norm)
        stages = []
        channels = stem_channels
        for stage_index, (width, blocks) in enumerate(zip(widths, blocks_per_stage)):
            layers = []
            for block_index in range(blocks):
                stride = 2 if block_index == 0 else 1
                layers.append(block_factory(stage_index, block_index, channels, width, stride))
                channels = width
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.out_channels: list[int] = list(widths)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outputs: list[torch.Tensor] = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs


def derived_backbone(genotype: Genotype, in_channels: int, norm: str) -> StagedBackbone:
    """The backbone a genotype names."""

    def factory(stage: int, block: int, c_in: int, c_out: int, stride: int) -> nn.Module:
        return build_op(genotype.stages[stage].ops[block], c_in, c_out, stride, norm)

    return StagedBackbone(
        in_channels=in_channels,
        stem_channels=genotype.stem_channels,
        widths=[stage.width for stage in genotype.stages],
        blocks_per_stage=[len(stage.ops) for stage in genotype.stages],
        norm=norm,
        block_factory=factory,
    )
