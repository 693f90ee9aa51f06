"""Box helpers shared by the RPN and the RoI heads."""

from __future__ import annotations

import torch


def clip_boxes_per_image(boxes: torch.Tensor, image_index: torch.Tensor, image_sizes: list[tuple[int, int]]) -> torch.Tensor:
    """Clip boxes (..., 4) x1, y1, x2, y2 to the (height, width) of the image each belongs to.

    ``image_index`` has the shape of ``boxes`` without its last dimension and names each box's
    image in ``image_sizes``; every image of a batch is clipped in one pass.
    """
    heights = torch.tensor([float(s[0]) for s in image_sizes], device=boxes.device, dtype=boxes.dtype)[image_index]
    widths = torch.tensor([float(s[1]) for s in image_sizes], device=boxes.device, dtype=boxes.dtype)[image_index]
    return torch.stack(
        [
            torch.minimum(boxes[..., 0].clamp(min=0), widths),
            torch.minimum(boxes[..., 1].clamp(min=0), heights),
            torch.minimum(boxes[..., 2].clamp(min=0), widths),
            torch.minimum(boxes[..., 3].clamp(min=0), heights),
        ],
        dim=-1,
    )
