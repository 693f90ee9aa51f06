"""Training-time augmentation that keeps boxes right: scale, translation, flip, intensity.

Each call draws from a ``torch.Generator`` the caller seeds per (run seed, epoch, sample), so an
augmented epoch is identical whether a run was interrupted and resumed or not, and whatever the
number of data-loader workers. :class:`AugmentConfig` (the ``train.augment`` section) is defined
without torch in :mod:`fsd.augment_config` and re-exported here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fsd.augment_config import AugmentConfig

Target = dict[str, torch.Tensor]
#: target entries that describe the image, not its lesions (kept whole when lesions are dropped)
IMAGE_KEYS = frozenset({"image_id", "slice_z"})


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def augment(image: torch.Tensor, target: Target, config: AugmentConfig, generator: torch.Generator) -> tuple[torch.Tensor, Target]:
    """Return an augmented copy of ``(image, target)``; the inputs are not modified."""
    boxes = target["boxes"].clone()
    channels, height, width = image.shape
    scale = _uniform(generator, *config.scale_range)
    new_h, new_w = max(int(round(height * scale)), 8), max(int(round(width * scale)), 8)
    out = F.interpolate(image[None], size=(new_h, new_w), mode="bilinear", align_corners=False)[0]
    boxes[:, 0::2] *= new_w / width
    boxes[:, 1::2] *= new_h / height
    if config.translate_px > 0:
        shift_x = int(torch.randint(-config.translate_px, config.translate_px + 1, (), generator=generator))
        shift_y = int(torch.randint(-config.translate_px, config.translate_px + 1, (), generator=generator))
        shifted = out.new_zeros(out.shape)
        src_x0, dst_x0 = max(-shift_x, 0), max(shift_x, 0)
        src_y0, dst_y0 = max(-shift_y, 0), max(shift_y, 0)
        span_w, span_h = new_w - abs(shift_x), new_h - abs(shift_y)
        shifted[:, dst_y0 : dst_y0 + span_h, dst_x0 : dst_x0 + span_w] = out[:, src_y0 : src_y0 + span_h, src_x0 : src_x0 + span_w]
        out = shifted
        boxes[:, 0::2] += shift_x
        boxes[:, 1::2] += shift_y
    if config.hflip > 0 and float(torch.rand((), generator=generator)) < config.hflip:
        out = out.flip(-1)
        boxes = torch.stack([new_w - boxes[:, 2], boxes[:, 1], new_w - boxes[:, 0], boxes[:, 3]], dim=1)
    if config.intensity_jitter > 0:
        gain = 1.0 + _uniform(generator, -config.intensity_jitter, config.intensity_jitter)
        offset = _uniform(generator, -config.intensity_jitter, config.intensity_jitter) * 0.1
        out = (out * gain + offset).clamp(0.0, 1.0)
    area_before = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    clipped = boxes.clone()
    clipped[:, 0::2] = clipped[:, 0::2].clamp(0, new_w)
    clipped[:, 1::2] = clipped[:, 1::2].clamp(0, new_h)
    area_after = (clipped[:, 2] - clipped[:, 0]).clamp(min=0) * (clipped[:, 3] - clipped[:, 1]).clamp(min=0)
    keep = area_after >= config.min_visible * area_before.clamp(min=1e-6)
    result = {key: value.clone() for key, value in target.items()}
    per_lesion = [key for key, value in target.items() if key not in IMAGE_KEYS and value.shape[:1] == boxes.shape[:1]]
    for key in per_lesion:
        result[key] = result[key][keep]
    result["boxes"] = clipped[keep]
    return out.contiguous(), result


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The generator for one sample of one epoch of one run."""
    generator = torch.Generator()
    generator.manual_seed((seed * 1_000_003 + epoch * 10_007 + index) % (2**63 - 1))
    return generator
