"""The supernet: the FSD detector with a mixed op at every backbone block and head-cell edge."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from fsd.config import SpaceSection
from fsd.models import DetectorConfig, LesionDetector
from fsd.models.backbone import StagedBackbone
from fsd.models.builder import assemble_detector
from fsd.models.head_cell import CellBoxHead
from fsd.models.neck import FeaturePyramid
from search.mixed_op import MixedOp


def build_supernet(space: SpaceSection, config: DetectorConfig, partial_channels: int = 1) -> LesionDetector:
    """A detector whose searchable positions are mixed ops over the space's candidate ops."""
    norm = config.model.norm

    def block(stage: int, index: int, c_in: int, c_out: int, stride: int) -> nn.Module:
        return MixedOp(list(space.backbone_ops), c_in, c_out, stride, norm, partial_channels)

    def edge(index: int, source: int, target: int, channels: int) -> nn.Module:
        return MixedOp(list(space.head_ops), channels, channels, 1, norm, partial_channels)

    backbone = StagedBackbone(
        in_channels=config.in_channels,
        stem_channels=space.stem_channels,
        widths=[stage.width for stage in space.stages],
        blocks_per_stage=[stage.blocks for stage in space.stages],
        norm=norm,
        block_factory=block,
    )
    neck = FeaturePyramid(backbone.out_channels, config.model.fpn_channels, norm)
    head = CellBoxHead(
        in_channels=neck.out_channels,
        channels=space.head_channels,
        nodes=space.head_nodes,
        pool_size=config.model.roi.pool_size,
        representation=config.model.roi.representation,
        norm=norm,
        edge_factory=edge,
    )
    return assemble_detector(config, backbone, neck, head, head.out_channels)


def backbone_mixed_ops(model: nn.Module) -> list[MixedOp]:
    """Mixed ops of the backbone, in block order."""
    return [m for m in model.backbone.modules() if isinstance(m, MixedOp)]


def head_mixed_ops(model: nn.Module) -> list[MixedOp]:
    """Mixed ops of the head cell, in edge order."""
    return [m for m in model.roi_heads.box_head.modules() if isinstance(m, MixedOp)]


def architecture_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [m.alpha for m in model.modules() if isinstance(m, MixedOp)]


def weight_parameters(model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    """Named parameters that are network weights (everything but the alphas)."""
    for name, parameter in model.named_parameters():
        if not name.endswith(".alpha") and name != "alpha":
            yield name, parameter


def expected_parameters_millions(model: nn.Module) -> torch.Tensor:
    """Expected parameters (millions) of the searchable positions under the current alphas."""
    total = [m.expected_parameters() for m in model.modules() if isinstance(m, MixedOp)]
    return torch.stack(total).sum() / 1e6
