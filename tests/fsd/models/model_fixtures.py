"""Tiny detectors and inputs shared by the model tests."""

from __future__ import annotations

import torch

from fsd.config import FsdConfig
from fsd.models import DetectorConfig
from fsd.models.genotype import make_genotype


def tiny_config(task: str = "types", norm: str = "sn", graph: bool = False) -> DetectorConfig:
    config = FsdConfig.model_validate(
        {
            "task": task,
            "model": {
                "norm": norm,
                "fpn_channels": 16,
                "rpn": {"pre_nms_top_n_test": 50, "post_nms_top_n_test": 20, "pre_nms_top_n_train": 100, "post_nms_top_n_train": 40},
                "roi": {"representation": 32, "batch_size_per_image": 16, "score_thresh": 0.0},
                "graph": {"enabled": graph, "hidden": 16},
            },
        }
    )
    return DetectorConfig.from_config(config)


def tiny_genotype():
    return make_genotype(
        8,
        [(8, ["ir_k3_e3"]), (16, ["sep_conv_3x3", "skip"]), (16, ["dil_conv_3x3"]), (24, ["conv_3x3"])],
        8,
        ["conv_3x3", "zero", "sep_conv_3x3"],
    )


def tiny_batch(seed: int = 0) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    generator = torch.Generator().manual_seed(seed)
    images = [torch.rand(3, 64, 80, generator=generator), torch.rand(3, 48, 64, generator=generator)]
    targets = [
        {"boxes": torch.tensor([[10.0, 12.0, 30.0, 28.0], [40.0, 30.0, 60.0, 50.0]]), "labels": torch.tensor([4, 5]), "slice_z": torch.tensor([0.4])},
        {"boxes": torch.tensor([[5.0, 5.0, 20.0, 25.0]]), "labels": torch.tensor([1]), "slice_z": torch.tensor([0.7])},
    ]
    return images, targets


