"""`fsd train`: retrain a derived network (or a baseline) from scratch, resumably.

The training loop of :mod:`fsd.engine.loop` plus validation: after every ``eval_every_epochs``
epochs (and the last) the model is scored on the val split, then a copy of it whose BN
statistics are recomputed over ``train.recalibrate_batches`` training batches
(:mod:`fsd.engine.recalibration`) is scored again, and the best recalibrated model is kept.
Both scores go to the log (``metrics_before_recalibration`` and ``metrics``), with the
normalization layers' mean importance of IN, LN and BN.

Files in the run directory: ``last.pt`` (every ``checkpoint_every_iters`` and at each epoch
end, with the running statistics), ``best.pt`` (best validation FROC mean over 0.5-4 FPs, with
recalibrated statistics), ``metrics.jsonl``, ``training.png``, ``config.yaml``,
``summary.json``.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fsd.config import FsdConfig
from fsd.data.deeplesion import DeepLesionDataset
from fsd.data.type_balance import repeat_counts, type_loss_weights
from fsd.data.type_prior import type_prior_from_records
from fsd.engine.datasets import build_dataset
from fsd.engine.distributed import DistributedContext
from fsd.engine.loop import Batch, TrainingLoop, run_loop
from fsd.engine.metrics_log import MetricsLog
from fsd.engine.plots import plot_training
from fsd.engine.prediction import predict_dataset, score_predictions
from fsd.engine.recalibration import layers_with_batch_statistics, recalibrate_batch_statistics
from fsd.engine.recipe import Recipe
from fsd.models import DetectorConfig, build_from_architecture
from fsd.nn import NORMALIZER_NAMES, mixing_weights, revert_sync_switchnorm

logger = logging.getLogger(__name__)

PRIMARY_METRIC = "froc_mean_0.5_4"
#: recalibration draws its batches from these (augmentation and order) epochs, apart from training's
RECALIBRATION_EPOCHS = 1_000_000


def _repeat(loader: Iterable[Batch], count: int) -> Iterator[Batch]:
    """``count`` batches from passes over ``loader`` (fewer training batches than asked repeat)."""
    produced = 0
    while produced < count:
        empty = True
        for batch in loader:
            empty = False
            yield batch
            produced += 1
            if produced >= count:
                return
        if empty:
            return


def mean_importance(network: nn.Module) -> dict[str, Any]:
    """The mean importance of each normalizer over the SN-like layers (means and variances), and
    the share of layers that have settled (largest weight above 0.9)."""
    weights = list(mixing_weights(network).values())
    if not weights:
        return {}
    stacked = torch.stack([w for w in weights if w.shape == weights[0].shape])
    names = NORMALIZER_NAMES[: stacked.shape[2]]
    return {
        "mean": dict(zip(names, stacked[:, 0].mean(dim=0).tolist())),
        "var": dict(zip(names, stacked[:, 1].mean(dim=0).tolist())),
        "settled": float((stacked.max(dim=2).values > 0.9).float().mean()),
        "layers": len(weights),
    }


#: the data a training learns from and is validated (and its best checkpoint chosen) on
TrainingSets = tuple[DeepLesionDataset, DeepLesionDataset]


@dataclass
class TrainResult:
    out_dir: Path
    best_metric: float | None
    iterations: int
    last_checkpoint: Path
    best_checkpoint: Path | None


def build_model(config: FsdConfig, architecture: dict[str, Any], train_records: list | None = None) -> nn.Module:
    """The network to train, seeded by ``config.seed``, with the type prior and the typing-loss
    weights (multi-type task) from the train split."""
    torch.manual_seed(config.seed)
    prior = None
    if config.model.graph.enabled and train_records is not None:
        prior = type_prior_from_records(train_records, num_types=config.num_classes)
    model = build_from_architecture(architecture, DetectorConfig.from_config(config), type_prior=prior)
    if config.num_classes > 1 and train_records is not None:
        model.roi_heads.set_type_weights(type_loss_weights(train_records, config.num_classes, config.model.type_balance))
    return model


class Trainer(TrainingLoop):
    """Training with validation and the best checkpoint (see the module docstring)."""

    kind = "train"
    checkpoint_name = "last.pt"
    log_name = "metrics.jsonl"
    lr_key = "train.lr (or raise train.warmup_iters)"

    def __init__(
        self,
        config: FsdConfig,
        architecture: dict[str, Any],
        out_dir: Path,
        context: DistributedContext,
        progress: bool = True,
        datasets: TrainingSets | None = None,
    ) -> None:
        train_set, self.val_set = datasets if datasets is not None else (build_dataset(config, "train"), build_dataset(config, "val"))
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
            repeats=repeat_counts(train_set.records, config.num_classes, config.train.type_repeat_threshold, config.seed)
            if config.num_classes > 1
            else None,
        )

    def validate(self, network: nn.Module) -> dict[str, Any]:
        predictions = predict_dataset(network, self.val_set, self.device, self.config.eval.batch_size, self.use_amp, self.progress)
        return score_predictions(predictions, self.val_set.num_classes, self.config.eval.fps, self.config.eval.iou)

    def recalibrated_copy(self) -> nn.Module | None:
        """A copy of the network with BN statistics recomputed over training batches (None when
        recalibration is off or the network keeps no BN statistics)."""
        batches = self.config.train.recalibrate_batches
        if batches < 1 or not any(layers_with_batch_statistics(self.network)):
            return None
        network = revert_sync_switchnorm(copy.deepcopy(self.network))
        loader = self.batches.loader(RECALIBRATION_EPOCHS + self.position.epoch)
        recalibrate_batch_statistics(network, _repeat(loader, batches), self.device, batches)
        return network.eval()

    def end_of_epoch(self, log: MetricsLog) -> None:
        epoch, epochs = self.position.epoch, self.recipe.epochs
        if not self.context.is_main or not (epoch % self.config.train.eval_every_epochs == 0 or epoch == epochs):
            return
        before = self.validate(self.network)
        recalibrated = self.recalibrated_copy()
        metrics = before if recalibrated is None else self.validate(recalibrated)
        value = metrics.get(PRIMARY_METRIC)
        log.write(
            {
                "type": "val",
                "iteration": self.position.iteration,
                "epoch": epoch,
                "metrics": metrics,
                "metrics_before_recalibration": before,
                "norm_importance": mean_importance(self.network),
            }
        )
        if value is not None and math.isfinite(value) and (self.best_metric is None or value > self.best_metric):
            self.best_metric = float(value)
            self.save("best.pt", None if recalibrated is None else recalibrated.state_dict())
        logger.info("epoch %d: validation %s = %s (before recalibration %s)", epoch, PRIMARY_METRIC, value, before.get(PRIMARY_METRIC))

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
    datasets: TrainingSets | None = None,
    stop_at_epoch: int | None = None,
) -> TrainResult:
    """Train ``architecture`` with ``config`` into ``out_dir`` (see the module docstring); on
    ``datasets`` (training set, validation set) instead of the config's train and val splits
    when given (the search's short-training proxy: its weight and architecture sets); only up to
    epoch ``stop_at_epoch`` of the schedule when given (resume later to go on)."""
    out_dir = Path(out_dir)
    trainer = run_loop(lambda context: Trainer(config, architecture, out_dir, context, progress, datasets), Trainer, out_dir, resume, device, stop_at_epoch)
    best = out_dir / "best.pt"
    return TrainResult(
        out_dir, trainer.best_metric, trainer.position.iteration, out_dir / "last.pt", best if best.exists() else None
    )
