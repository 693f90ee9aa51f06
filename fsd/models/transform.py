"""Batching the model inputs: intensity normalisation, padding to a stride multiple, and the
patient's extent in every image.

Images arrive already at the model's pixel spacing (see :mod:`fsd.preprocess`), so unlike
torchvision's GeneralizedRCNNTransform nothing is resized and boxes need no mapping back.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.detection.image_list import ImageList

from fsd.models.body import body_boxes, opening_size_px


class BatchImages(nn.Module):
    """Normalise ``(x - mean) / std`` and pad a list of (C, H, W) images into one batch tensor.

    Returns the batch and, per image, the body box (x1, y1, x2, y2) of the key slice's pixels
    above ``body_threshold`` (in windowed units, like the input) without the scanner table
    (:mod:`fsd.models.body`) when ``find_bodies`` is set, or zeros when no part of the model
    needs it.
    """

    def __init__(
        self,
        in_channels: int,
        size_divisible: int,
        mean: float,
        std: float,
        body_threshold: float,
        find_bodies: bool,
        pixel_spacing_mm: float = 0.8,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.size_divisible = size_divisible
        self.mean = mean
        self.std = std
        self.body_threshold = (body_threshold - mean) / std
        self.body_channel = in_channels // 2
        self.find_bodies = find_bodies
        self.body_opening_px = opening_size_px(pixel_spacing_mm)

    def forward(self, images: list[torch.Tensor]) -> tuple[ImageList, torch.Tensor]:
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
        if self.find_bodies:
            bodies = body_boxes(batch, sizes, self.body_threshold, self.body_channel, self.body_opening_px)
        else:
            bodies = batch.new_zeros((len(images), 4))
        return ImageList(batch, sizes), bodies
