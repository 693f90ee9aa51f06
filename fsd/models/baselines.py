"""General-purpose baselines from the same code path: Faster R-CNN with ResNet-50-FPN and
ResNet-18-FPN backbones (torchvision's ResNets, randomly initialised: no pretrained weights
exist here), the same transform, anchors, RPN, RoI pooling and predictor as FSD, and
torchvision's two-layer MLP box head (1024-d) instead of the searched cell.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet18, resnet50
from torchvision.models.detection.faster_rcnn import TwoMLPHead

from fsd.nn import make_norm

BASELINES: tuple[str, ...] = ("resnet50_fpn", "resnet18_fpn")
MLP_REPRESENTATION = 1024


class ResNetBody(nn.Module):
    """A torchvision ResNet's stem and 4 stages, returning the 4 stage outputs."""

    def __init__(self, name: str, in_channels: int, norm: str) -> None:
        super().__init__()
        factory = {"resnet50_fpn": resnet50, "resnet18_fpn": resnet18}[name]
        net = factory(weights=None, norm_layer=lambda channels: make_norm(norm, channels))
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1 = net.layer1
        self.layer2 = net.layer2
        self.layer3 = net.layer3
        self.layer4 = net.layer4
        expansion = 4 if name == "resnet50_fpn" else 1
        self.out_channels: list[int] = [64 * expansion, 128 * expansion, 256 * expansion, 512 * expansion]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c2 = self.layer1(self.stem(x))
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return [c2, c3, c4, c5]


def baseline_box_head(in_channels: int, pool_size: int) -> TwoMLPHead:
    return TwoMLPHead(in_channels * pool_size * pool_size, MLP_REPRESENTATION)
