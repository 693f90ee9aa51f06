"""`LesionDetector`: wires the parts it receives, like torchvision's GeneralizedRCNN.

``forward(images, targets=None)`` always returns ``(losses, detections)``: losses (a dict of
scalar tensors) in training mode, detections (one dict per image with ``boxes`` (N, 4) in input
pixels, ``scores`` (N,), ``labels`` (N,) in 1..K and ``type_scores`` (N, K)) in eval mode. Eager
and TorchScript return the same structure.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from fsd.models.transform import BatchImages


class LesionDetector(nn.Module):
    def __init__(self, transform: BatchImages, backbone: nn.Module, neck: nn.Module, rpn: nn.Module, roi_heads: nn.Module) -> None:
        super().__init__()
        self.transform = transform
        self.backbone = backbone
        self.neck = neck
        self.rpn = rpn
        self.roi_heads = roi_heads

    def _check_targets(self, targets: Optional[list[dict[str, torch.Tensor]]], count: int) -> list[dict[str, torch.Tensor]]:
        if targets is None:
            raise ValueError("training needs targets")
        if len(targets) != count:
            raise ValueError(f"got {count} images but {len(targets)} targets")
        for target in targets:
            boxes = target["boxes"]
            if boxes.dim() != 2 or boxes.shape[1] != 4:
                raise ValueError(f"target boxes must be (N, 4), got {list(boxes.shape)}")
            if boxes.numel() > 0 and bool(((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])).any()):
                raise ValueError("target boxes must have positive width and height")
        return targets

    def forward(
        self, images: list[torch.Tensor], targets: Optional[list[dict[str, torch.Tensor]]] = None
    ) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
        if self.training:
            targets = self._check_targets(targets, len(images))
        batch, bodies = self.transform(images)
        features = self.neck(self.backbone(batch.tensors))
        proposals, rpn_losses = self.rpn(batch, features, targets)
        detections, head_losses = self.roi_heads(features, proposals, bodies, batch.image_sizes, targets)
        losses: dict[str, torch.Tensor] = {}
        for name, value in rpn_losses.items():
            losses[name] = value
        for name, value in head_losses.items():
            losses[name] = value
        return losses, detections
