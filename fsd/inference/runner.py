"""Calling a detector (eager or TorchScript) on prepared inputs in batches."""

from __future__ import annotations

from collections.abc import Sequence

import torch

Detection = dict[str, torch.Tensor]


@torch.no_grad()
def run_detector(module: torch.nn.Module, images: Sequence[torch.Tensor], device: torch.device, batch_size: int = 8) -> list[Detection]:
    """Eval-mode detections for each image, moved to the CPU, in input order."""
    detections: list[Detection] = []
    for start in range(0, len(images), batch_size):
        chunk = [image.to(device, non_blocking=True) for image in images[start : start + batch_size]]
        _, output = module(chunk)
        detections.extend({key: value.cpu() for key, value in item.items()} for item in output)
    return detections
