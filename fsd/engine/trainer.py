"""`fsd train`: retrain a derived network (or a baseline) from scratch, resumably.

The training loop of :mod:`fsd.engine.loop` plus validation: after every ``eval_every_epochs``
epochs (and the last) the model is scored on the val split and the best one is kept.

Files in the run directory: ``last.pt`` (every ``checkpoint_every_iters`` and at each epoch
end), ``best.pt`` (best validation FROC mean over 0.5-4 FPs), ``metrics.jsonl``,
``training.png``, ``config.yaml``, ``summary.json``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fsd.config import FsdConfig
from fsd.data.type_prior import type_prior_from_records
from fsd.engine.datasets import build_dataset
from fsd.engine.distributed import DistributedContext
from fsd.engine.loop import TrainingLoop, run_loop
from fsd.engine.metrics_log import MetricsLog
from fsd.engine.plots import plot_training
from fsd.engine.prediction import predict_dataset, score_predictions
from fsd.engine.recipe import Recipe
from fsd.models import DetectorConfig, build_from_architecture

logger = logging.getLogger(__name__)

PRIMARY_METRIC = "froc_mean_0.5_4"


@dataclass
class TrainResult:
    out_dir: Path
    best_metric: float | None
    iterations: int
    last_checkpoint: Path
    best_checkpoint: Path | None


def build_model(config: FsdConfig, architecture: dict[str, Any], train_records: list | None = None) -> nn.Module:
    """The network to train, seeded by ``config.seed``, with the type prior from the train split."""
    torch.manual_seed(config.seed)
    prior = None
    if config.model.graph.enabled and train_records is not None:
        prior = type_prior_from_records(train_records, num_types=config.num_classes)
    return build_from_architecture(architecture, DetectorConfig.from_config(config), type_prior=prior)


class Trainer(TrainingLoop):
    """Training with validation and the best checkpoint (see the module docstring)."""

    kind = "train"
    checkpoint_name = "last.pt"
    log_name = "metrics.jsonl"
    lr_key = "train.lr (or raise train.warmup_iters)"

    def __init__(self, config: FsdConfig, architecture: dict[str, Any], out_dir: Path, context: DistributedContext, progress: bool = True) -> None:
        train_set = build_dataset(config, "train")
        self.val_set = build_dataset(config, "val")
        model = build_model(config, architecture, train_set.records).to(context.device)
        super().__init__(
            config,
            architecture,
            DetectorConfig.from_config(config),
            model,
            train_set,
            Recipe.for_training(config.train),
            out_dir,
            context,
            progress,
        )

    def validate(self) -> dict[str, Any]:
        predictions = predict_dataset(self.network, self.val_set, self.device, self.config.eval.batch_size, self.use_amp, self.progress)
        return score_predictions(predictions, self.val_set.num_classes, self.config.eval.fps, self.config.eval.iou)

    def end_of_epoch(self, log: MetricsLog) -> None:
        epoch, epochs = self.position.epoch, self.recipe.epochs
        if not self.context.is_main or not (epoch % self.config.train.eval_every_epochs == 0 or epoch == epochs):
            return
        metrics = self.validate()
        value = metrics.get(PRIMARY_METRIC)
        log.write({"type": "val", "iteration": self.position.iteration, "epoch": epoch, "metrics": metrics})
        if value is not None and math.isfinite(value) and (self.best_metric is None or value > self.best_metric):
            self.best_metric = float(value)
            self.save("best.pt")
        logger.info("epoch %d: validation %s = %s", epoch, PRIMARY_METRIC, value)

    def finish(self, checksums: list[str]) -> None:
        plot_training(self.out_dir / self.log_name, self.out_dir / "training.png", title=self.config.name)
        summary = {
            "best_metric": self.best_metric,
            "primary_metric": PRIMARY_METRIC,
            "iterations": self.position.iteration,
            "architecture": self.architecture.get("kind"),
            "world_size": self.context.world_size,
            "rank_weight_checksums": checksums,
        }
        (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def train(
    config: FsdConfig,
    architecture: dict[str, Any],
    out_dir: str | Path,
    resume: bool = False,
    device: str = "auto",
    progress: bool = True,
) -> TrainResult:
    """Train ``architecture`` with ``config`` into ``out_dir`` (see the module docstring)."""
    out_dir = Path(out_dir)
    trainer = run_loop(lambda context: Trainer(config, architecture, out_dir, context, progress), Trainer, out_dir, resume, device)
    best = out_dir / "best.pt"
    return TrainResult(
        out_dir, trainer.best_metric, trainer.position.iteration, out_dir / "last.pt", best if best.exists() else None
    )
