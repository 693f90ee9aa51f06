"""`fsd train`: retrain a derived network (or a baseline) from scratch, resumably.

One loop serves one CPU, one GPU and many processes under torchrun. What makes a resumed run
identical to an uninterrupted one: the sampler's order is a function of (seed, epoch), each
sample's augmentation of (seed, epoch, index), the learning rate of the iteration, and the
checkpoint carries model, optimizer, position (epoch, batch, iteration) and every RNG state.

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
from torch.utils.data import DataLoader, Dataset

from fsd.config import FsdConfig
from fsd.data.augment import AugmentConfig, augment, sample_generator
from fsd.data.deeplesion import DeepLesionDataset, collate_detection
from fsd.engine.checkpoint import (
    CheckpointError,
    atomic_save,
    check_run_directory,
    load_checkpoint,
    restore_rng_state,
    rng_state,
)
from fsd.engine.datasets import ensure_data, open_split
from fsd.engine.distributed import (
    DistributedContext,
    barrier,
    gather_object,
    init_distributed,
    parameter_checksum,
    unwrap,
    wrap_data_parallel,
)
from fsd.engine.metrics_log import MetricsLog
from fsd.engine.plots import plot_training
from fsd.engine.prediction import predict_dataset, score_predictions
from fsd.engine.sampler import ResumableSampler
from fsd.engine.schedule import apply_lr, lr_at
from fsd.errors import FsdError
from fsd.models import DetectorConfig, build_from_architecture
from fsd.models.graph import type_prior_from_records
from fsd.nn import (
    clip_batch_instance_gates,
    norm_parameter_groups,
    update_sparse_radius,
)
from fsd.progress import progress_bar

logger = logging.getLogger(__name__)

PRIMARY_METRIC = "froc_mean_0.5_4"


class TrainingError(FsdError):
    code = "training_failed"


class AugmentedView(Dataset):
    """A data set whose items are augmented with per-(seed, epoch, index) generators."""

    def __init__(self, base: DeepLesionDataset, config: AugmentConfig, seed: int) -> None:
        self.base = base
        self.config = config
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image, target = self.base[index]
        return augment(image, target, self.config, sample_generator(self.seed, self.epoch, index))


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
    detector_config = DetectorConfig.from_config(config)
    model = build_from_architecture(architecture, detector_config)
    if config.model.graph.enabled and train_records is not None:
        prior = type_prior_from_records(train_records, num_types=detector_config.num_classes)
        model.roi_heads.box_predictor.type_graph.set_prior(prior, config.model.graph.prior_weight)
    return model


def build_optimizer(model: nn.Module, config: FsdConfig) -> torch.optim.Optimizer:
    train = config.train
    groups = norm_parameter_groups(model, train.weight_decay, mix_lr_scale=train.norm_mix_lr_scale)
    if train.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=train.lr, momentum=train.momentum)
    return torch.optim.AdamW(groups, lr=train.lr)


class Trainer:
    """State and steps of one training run (see the module docstring)."""

    def __init__(self, config: FsdConfig, architecture: dict[str, Any], out_dir: Path, context: DistributedContext, progress: bool = True) -> None:
        self.config = config
        self.architecture = architecture
        self.out_dir = out_dir
        self.context = context
        self.progress = progress and context.is_main
        self.device = context.device
        ensure_data(config, context)
        self.train_set = open_split(config, "train")
        self.val_set = open_split(config, "val")
        self.model = build_model(config, architecture, self.train_set.records).to(self.device)
        self.model = wrap_data_parallel(self.model, context, config.model.norm)
        self.optimizer = build_optimizer(self.model, config)
        train = config.train
        self.sampler = ResumableSampler(
            len(self.train_set), train.batch_size, config.seed, True, context.rank, context.world_size
        )
        per_epoch = self.sampler.batches_per_epoch
        self.iters_per_epoch = min(per_epoch, train.max_iters_per_epoch or per_epoch)
        self.total_iters = self.iters_per_epoch * train.epochs
        augment_section = train.augment
        self.view = AugmentedView(
            self.train_set,
            AugmentConfig(
                hflip=augment_section.hflip,
                scale_range=augment_section.scale_range,
                translate_px=augment_section.translate_px,
                intensity_jitter=augment_section.intensity_jitter,
            ),
            config.seed,
        )
        self.epoch = 0
        self.batch_in_epoch = 0
        self.iteration = 0
        self.best_metric: float | None = None
        self.use_amp = train.amp and self.device.type == "cuda"

    # -- checkpoints -------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "format": "fsd-checkpoint",
            "model": unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "architecture": self.architecture,
            "detector_config": DetectorConfig.from_config(self.config).to_dict(),
            "preprocess": self.config.preprocess_config().to_dict(),
            "config": self.config.model_dump(mode="json"),
            "task": self.config.task,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "iteration": self.iteration,
            "total_iters": self.total_iters,
            "best_metric": self.best_metric,
            "rng": rng_state(),
        }

    def save(self, name: str) -> Path:
        path = self.out_dir / name
        if self.context.is_main:
            atomic_save(self.state(), path)
        return path

    def restore(self, path: Path) -> None:
        state = load_checkpoint(path)
        if state.get("architecture") != self.architecture:
            raise CheckpointError(f"{path} was written for another architecture; start a new --out directory")
        if state.get("total_iters") != self.total_iters:
            raise CheckpointError(
                f"{path} was written with a schedule of {state.get('total_iters')} iterations, the config now "
                f"gives {self.total_iters}; resume with the original config"
            )
        unwrap(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = int(state["epoch"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        self.iteration = int(state["iteration"])
        self.best_metric = state.get("best_metric")
        restore_rng_state(state["rng"])

    # -- loop --------------------------------------------------------------------------------
    def _loader(self) -> DataLoader:
        self.view.epoch = self.epoch
        self.sampler.set_epoch(self.epoch, self.batch_in_epoch)
        generator = torch.Generator()
        generator.manual_seed(self.config.seed + self.epoch)
        return DataLoader(
            self.view,
            batch_size=self.config.train.batch_size,
            sampler=self.sampler,
            collate_fn=collate_detection,
            num_workers=self.config.data.num_workers,
            generator=generator,
        )

    def _step(self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        train = self.config.train
        lr = lr_at(self.iteration, self.total_iters, train.lr, train.warmup_iters, train.min_lr_ratio)
        apply_lr(self.optimizer, lr)
        update_sparse_radius(self.model, self.iteration / max(self.total_iters - 1, 1))
        images = [image.to(self.device, non_blocking=True) for image in images]
        targets = [{k: v.to(self.device, non_blocking=True) for k, v in t.items()} for t in targets]
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
            losses, _ = self.model(images, targets)
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            raise TrainingError(
                f"training diverged at iteration {self.iteration}: loss is {loss.item()}; the last checkpoint is "
                f"intact — lower train.lr or raise train.warmup_iters and resume"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), train.grad_clip)
        self.optimizer.step()
        clip_batch_instance_gates(self.model)
        record = {name: float(value.detach()) for name, value in losses.items()}
        record["loss"] = float(loss.detach())
        record["lr"] = lr
        return record

    def validate(self) -> dict[str, Any]:
        predictions = predict_dataset(
            unwrap(self.model), self.val_set, self.device, self.config.eval.batch_size, self.use_amp, self.progress
        )
        return score_predictions(predictions, self.val_set.num_classes, self.config.eval.fps, self.config.eval.iou)

    def run(self, log: MetricsLog) -> TrainResult:
        train = self.config.train
        bar = progress_bar(total=self.total_iters, initial=self.iteration, desc="train", disable=not self.progress)
        try:
            while self.epoch < train.epochs:
                self.model.train()
                for images, targets in self._loader():
                    if self.batch_in_epoch >= self.iters_per_epoch:
                        break
                    record = self._step(images, targets)
                    self.iteration += 1
                    self.batch_in_epoch += 1
                    log.write({"type": "train", "iteration": self.iteration, "epoch": self.epoch, **record})
                    bar.update(1)
                    bar.set_postfix(loss=f"{record['loss']:.3f}", epoch=self.epoch, refresh=False)
                    if self.iteration % train.checkpoint_every_iters == 0:
                        self.save("last.pt")
                self.epoch += 1
                self.batch_in_epoch = 0
                if self.epoch % train.eval_every_epochs == 0 or self.epoch == train.epochs:
                    self._validate_and_keep_best(log)
                self.save("last.pt")
                barrier(self.context)
        except KeyboardInterrupt:
            self.save("last.pt")
            raise
        finally:
            bar.close()
        best = self.out_dir / "best.pt"
        return TrainResult(self.out_dir, self.best_metric, self.iteration, self.out_dir / "last.pt", best if best.exists() else None)

    def _validate_and_keep_best(self, log: MetricsLog) -> None:
        if not self.context.is_main:
            return
        metrics = self.validate()
        value = metrics.get(PRIMARY_METRIC)
        log.write({"type": "val", "iteration": self.iteration, "epoch": self.epoch, "metrics": metrics})
        if value is not None and math.isfinite(value) and (self.best_metric is None or value > self.best_metric):
            self.best_metric = float(value)
            self.save("best.pt")
        logger.info("epoch %d: validation %s = %s", self.epoch, PRIMARY_METRIC, value)


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
    context = init_distributed(device)
    last = out_dir / "last.pt"
    check_run_directory(last, resume, "training")
    trainer = Trainer(config, architecture, out_dir, context, progress)
    if resume:
        trainer.restore(last)
    if context.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(config.to_yaml())
    log = MetricsLog(out_dir / "metrics.jsonl", trainer.iteration if resume else None, enabled=context.is_main)
    result = trainer.run(log)
    checksums = gather_object(context, parameter_checksum(unwrap(trainer.model)))
    if len(set(checksums)) != 1:
        raise TrainingError(f"data-parallel ranks ended with different weights (checksums {checksums})")
    if context.is_main:
        plot_training(out_dir / "metrics.jsonl", out_dir / "training.png", title=config.name)
        summary = {
            "best_metric": result.best_metric,
            "primary_metric": PRIMARY_METRIC,
            "iterations": result.iterations,
            "architecture": architecture.get("kind"),
            "world_size": context.world_size,
            "rank_weight_checksums": checksums,
        }
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    barrier(context)
    return result
