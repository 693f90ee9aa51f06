"""A toy-scale benchmark config shared by the accuracy and ranking benchmark tests: a few synthetic
patients, a tiny search space, one-epoch training, a separate toy test set."""

from __future__ import annotations

from pathlib import Path

from fsd.config import FsdConfig

SPACE = {
    "stem_channels": 8,
    "stages": [{"width": 8, "blocks": 1}, {"width": 16, "blocks": 1}, {"width": 16, "blocks": 1}, {"width": 24, "blocks": 1}],
    "backbone_ops": ["conv_3x3", "ir_k3_e3", "skip"],
    "head_ops": ["conv_3x3", "skip", "zero"],
    "head_nodes": 2,
    "head_channels": 8,
}


def toy_config(root: Path) -> FsdConfig:
    return FsdConfig.model_validate(
        {
            "name": "toy-bench",
            "task": "binary",
            "data": {"root": root / "data", "synth": {"patients": 7, "size": 128, "seed": 3, "type_all": True}},
            "preprocess": {"spacing_mm": 2.0, "max_size": 96},
            "model": {
                "fpn_channels": 16,
                "rpn": {"pre_nms_top_n_train": 100, "post_nms_top_n_train": 50, "pre_nms_top_n_test": 100, "post_nms_top_n_test": 60},
                "roi": {"representation": 32, "batch_size_per_image": 16, "score_thresh": 0.001, "detections_per_img": 60},
                "graph": {"hidden": 16, "context_size": 8},
            },
            "search": {"epochs": 2, "warmup_epochs": 1, "batch_size": 1, "max_iters_per_epoch": 2, "space": SPACE},
            "train": {"epochs": 1, "batch_size": 1, "max_iters_per_epoch": 2, "warmup_iters": 1, "recalibrate_batches": 2},
            "eval": {"batch_size": 2},
            "bench": {
                "test_data": {"root": root / "test", "synth": {"patients": 4, "size": 128, "seed": 99, "type_all": True}},
                "seeds": [0],
                "random_genotypes": 2,
                "bootstrap": 100,
            },
        }
    )
