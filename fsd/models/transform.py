"""Batching the model inputs: intensity normalisation and zero-cost padding to a stride multiple.

Images arrive already at the model's pixel spacing (see :mod:`fsd.preprocess`), so unlike
torchvision's GeneralizedRCNNTransform nothing is resized and boxes need no mapping back.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.detection.image_list import ImageList


class BatchImages(nn.Module):
    """Normalise ``(x - mean) / std`` and pad a list of (C, H, W) images into one batch tensor."""

    def __init__(self, in_channels: int, size_divisible: int, mean: float, std: float) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.size_divisible = size_divisible
        self.mean = mean
        self.std = std

    def forward(self, images: list[torch.Tensor]) -> ImageList:
        if len(images) == 0:
            raise ValueError("the detector needs at least one image")
        max_h = 0
        max_w = 0
        for image in images:
            if image.dim() != 3 or image.shape[0] != self.in_channels:
                raise ValueError(
                    f"expected images of shape ({self.in_channels}, H, W), got {list(image.shape)}"
                )
            max_h = max(max_h, image.shape[1])
            max_w = max(max_w, image.shape[2])
        stride = self.size_divisible
        max_h = (max_h + stride - 1) // stride * stride
        max_w = (max_w + stride - 1) // stride * stride
        pad_value = (0.0 - self.mean) / self.std
        batch = images[0].new_full((len(images), self.in_channels, max_h, max_w), pad_value)
        sizes: list[tuple[int, int]] = []
        for index, image in enumerate(images):
            height = image.shape[1]
            width = image.shape[2]
            batch[index, :, :height, :width].copy_((image - self.mean) / self.std)
            sizes.append((height, width))
        return ImageList(batch, sizes)
