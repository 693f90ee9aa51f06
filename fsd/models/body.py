"""The patient's extent in a model input: the box around the body, for region-aware positions.

Found by thresholding the key slice (the middle context channel) above the body threshold, as
DeepLesion's Normalized_lesion_location is relative to the body. :class:`BatchImages` computes
it with the batch, so the heads receive it instead of reading pixels.
"""

from __future__ import annotations

import torch


def body_boxes(images: torch.Tensor, image_sizes: list[tuple[int, int]], threshold: float, channel: int) -> torch.Tensor:
    """Per image, the box (x1, y1, x2, y2) of pixels above ``threshold`` in ``channel``.

    ``images`` is the padded batch in the model's normalised units, ``threshold`` in the same
    units. An image with nothing above the threshold gets its full extent.
    """
    boxes: list[torch.Tensor] = []
    for index, (height, width) in enumerate(image_sizes):
        mask = images[index, channel, :height, :width] > threshold
        rows = torch.nonzero(mask.any(dim=1)).flatten()
        cols = torch.nonzero(mask.any(dim=0)).flatten()
        if rows.numel() == 0 or cols.numel() == 0:
            box = torch.tensor([0.0, 0.0, float(width), float(height)], device=images.device)
        else:
            box = torch.stack([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]).to(images.dtype)
        boxes.append(box.to(images.dtype))
    return torch.stack(boxes)
