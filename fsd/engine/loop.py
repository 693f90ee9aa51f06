"""The one training engine: what `fsd train` and `fsd search` share.

A :class:`TrainingLoop` owns the data loading (augmented, with a resumable sampler), the weight
step (learning-rate schedule, sparse-SN radius, autocast, divergence check, clipping, BIN gate
clipping), checkpoints and resume, the metrics log and the progress bar. A run adds only what
is its own by overriding the hooks: ``after_step`` (the search's architecture step),
``end_of_epoch`` (validation and the best checkpoint; the search's alpha log), ``extra_state`` /
``load_extra_state`` (what its checkpoint must carry besides) and ``finish`` (summary files).
:func:`run_loop` runs one in a run directory: the directory guard, resume, ``config.yaml``, the
data-parallel check that every rank ends with the same weights.

What makes a resumed run identical to an uninterrupted one: the sampler's order is a function of
(seed, epoch), each sample's augmentation of (seed, epoch, index), the learning rate of the
iteration, and the checkpoint carries weights, optimizer, position and every RNG state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fsd.artifacts import (
    Checkpoint,
    RunPosition,
    load_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)
from fsd.artifacts.checkpoint import CheckpointKind
from fsd.config import FsdConfig
from fsd.data.augment import AugmentConfig, augment, sample_generator
from fsd.data.deeplesion import DeepLesionDataset, collate_detection
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
from fsd.engine.recipe import Recipe
from fsd.engine.run_directory import RunDirectoryError, check_run_directory
from fsd.engine.sampler import ResumableSampler
from fsd.engine.schedule import apply_lr, lr_at
from fsd.errors import FsdError
from fsd.models import DetectorConfig
from fsd.nn import clip_batch_instance_gates, update_sparse_radius
from fsd.progress import progress_bar

Batch = tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]


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


class EpochBatches:
    """Augmented, shuffled batches of one data set for one rank, epoch by epoch and resumable."""

    def __init__(
        self,
        dataset: DeepLesionDataset,
        augment_config: AugmentConfig,
        seed: int,
        batch_size: int,
        context: DistributedContext,
        workers: int,
        loader_seed: int,
        repeats: list[int] | None = None,
    ) -> None:
        self.view = AugmentedView(dataset, augment_config, seed)
        self.sampler = ResumableSampler(len(dataset), batch_size, seed, True, context.rank, context.world_size, repeats)
        self.batch_size = batch_size
        self.workers = workers
        self.loader_seed = loader_seed

    @property
    def batches_per_epoch(self) -> int:
        return self.sampler.batches_per_epoch

    def loader(self, epoch: int, start_batch: int = 0) -> DataLoader:
        """The batches of ``epoch`` from ``start_batch`` on."""
        self.view.epoch = epoch
        self.sampler.set_epoch(epoch, start_batch)
        generator = torch.Generator()
        generator.manual_seed(self.loader_seed + epoch)
        return DataLoader(
            self.view,
            batch_size=self.batch_size,
            sampler=self.sampler,
            collate_fn=collate_detection,
            num_workers=self.workers,
            generator=generator,
        )


class TrainingLoop:
    """State and steps of one run (see the module docstring); subclasses set the class
    attributes and override the hooks."""

    kind: ClassVar[CheckpointKind]
    checkpoint_name: ClassVar[str]
    log_name: ClassVar[str]
    #: the config key to lower when the run diverges
    lr_key: ClassVar[str]

    def __init__(
        self,
        config: FsdConfig,
        architecture: dict[str, Any],
        detector_config: DetectorConfig,
        model: nn.Module,
        dataset: DeepLesionDataset,
        recipe: Recipe,
        out_dir: Path,
        context: DistributedContext,
        progress: bool,
        frozen_from_weight_step: frozenset[int] = frozenset(),
        parameters_may_go_unused: bool = False,
        repeats: list[int] | None = None,
    ) -> None:
        self.config = config
        self.architecture = architecture
        self.detector_config = detector_config
        self.recipe = recipe
        self.out_dir = out_dir
        self.context = context
        self.device = context.device
        self.progress = progress and context.is_main
        self.dataset = dataset
        self.optimizer = recipe.optimizer_for(model, exclude=frozen_from_weight_step)
        #: what the weight step clips, in the model's parameter order
        self.weights = [p for p in model.parameters() if id(p) not in frozen_from_weight_step]
        self.model = wrap_data_parallel(model, context, detector_config.model.norm, parameters_may_go_unused)
        if config.data.num_workers > 0:
            dataset.preload()
        self.batches = EpochBatches(
            dataset, config.train.augment, config.seed, recipe.batch_size, context, config.data.num_workers, config.seed, repeats
        )
        per_epoch = self.batches.batches_per_epoch
        self.iters_per_epoch = min(per_epoch, recipe.max_iters_per_epoch or per_epoch)
        self.position = RunPosition(total_iters=self.iters_per_epoch * recipe.epochs)
        self.best_metric: float | None = None
        self.elapsed_s = 0.0
        self.use_amp = recipe.amp and self.device.type == "cuda"

    @property
    def network(self) -> nn.Module:
        """The network inside a data-parallel wrapper (or the model itself)."""
        return unwrap(self.model)

    # -- hooks -------------------------------------------------------------------------------
    def open_logs(self, resume_iteration: int | None) -> None:
        """Open the run's own logs besides the metrics log (``resume_iteration``: cut back to it)."""

    def before_step(self) -> None:
        """Before each weight step."""

    def after_step(self, record: dict[str, Any]) -> None:
        """After each weight step, with the record about to be logged (may add to it)."""

    def end_of_epoch(self, log: MetricsLog) -> None:
        """After each epoch, before the checkpoint is written."""

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, extra: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` saved."""

    def finish(self, checksums: list[str]) -> None:
        """On rank 0, once the run is complete and every rank holds the same weights."""

    # -- checkpoints -------------------------------------------------------------------------
    def checkpoint(self, weights: dict[str, torch.Tensor] | None = None) -> Checkpoint:
        """The run's checkpoint (``weights``: another state of the network, e.g. recalibrated)."""
        return Checkpoint(
            kind=self.kind,
            model=weights if weights is not None else self.network.state_dict(),
            optimizer=self.optimizer.state_dict(),
            architecture=self.architecture,
            detector_config=self.detector_config,
            config=self.config,
            position=RunPosition(**vars(self.position)),
            best_metric=self.best_metric,
            elapsed_s=self.elapsed_s,
            rng=rng_state(),
            extra=self.extra_state(),
        )

    def save(self, name: str, weights: dict[str, torch.Tensor] | None = None) -> Path:
        path = self.out_dir / name
        if self.context.is_main:
            save_checkpoint(self.checkpoint(weights), path)
        return path

    def restore(self, path: Path) -> None:
        state = load_checkpoint(path, kind=self.kind)
        if state.architecture != self.architecture:
            raise RunDirectoryError(f"{path} was written for another architecture; start a new --out directory")
        if state.position.total_iters != self.position.total_iters:
            raise RunDirectoryError(
                f"{path} was written with a schedule of {state.position.total_iters} iterations, the config now "
                f"gives {self.position.total_iters}; resume with the original config"
            )
        self.network.load_state_dict(state.model)
        self.optimizer.load_state_dict(state.optimizer)
        self.position = state.position
        self.best_metric = state.best_metric
        self.elapsed_s = state.elapsed_s
        self.load_extra_state(state.extra)
        restore_rng_state(state.rng)

    # -- steps -------------------------------------------------------------------------------
    def to_device(self, batch: Batch) -> Batch:
        images, targets = batch
        images = [image.to(self.device, non_blocking=True) for image in images]
        targets = [{k: v.to(self.device, non_blocking=True) for k, v in t.items()} for t in targets]
        return images, targets

    def losses(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The summed loss and its terms on ``batch``; TrainingError when it is not finite."""
        images, targets = self.to_device(batch)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
            terms, _ = self.model(images, targets)
        loss = sum(terms.values())
        if not torch.isfinite(loss):
            raise TrainingError(
                f"{self.kind} diverged at iteration {self.position.iteration}: loss is {loss.item()}; the last checkpoint "
                f"is intact — lower {self.lr_key} and resume"
            )
        return loss, terms

    def weight_step(self, batch: Batch) -> dict[str, Any]:
        recipe = self.recipe
        iteration = self.position.iteration
        lr = lr_at(iteration, self.position.total_iters, recipe.lr, recipe.warmup_iters, recipe.min_lr_ratio)
        apply_lr(self.optimizer, lr)
        update_sparse_radius(self.model, iteration / max(self.position.total_iters - 1, 1))
        loss, terms = self.losses(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.weights, recipe.grad_clip)
        self.optimizer.step()
        clip_batch_instance_gates(self.model)
        record: dict[str, Any] = {name: float(value.detach()) for name, value in terms.items()}
        record["loss"] = float(loss.detach())
        record["lr"] = lr
        return record

    # -- the loop ----------------------------------------------------------------------------
    def run(self, log: MetricsLog, stop_at_epoch: int | None = None) -> None:
        """Train to the end of the schedule, or only up to epoch ``stop_at_epoch`` of it (the
        schedule stays the whole one; a later resume goes on from there)."""
        recipe = self.recipe
        position = self.position
        last_epoch = recipe.epochs if stop_at_epoch is None else min(stop_at_epoch, recipe.epochs)
        validating = False
        bar = progress_bar(total=position.total_iters, initial=position.iteration, desc=self.kind, disable=not self.progress)
        try:
            while position.epoch < last_epoch:
                started = time.perf_counter()
                self.model.train()
                for batch in self.batches.loader(position.epoch, position.batch_in_epoch):
                    if position.batch_in_epoch >= self.iters_per_epoch:
                        break
                    self.before_step()
                    record = self.weight_step(batch)
                    self.after_step(record)
                    position.iteration += 1
                    position.batch_in_epoch += 1
                    log.write({"type": self.kind, "iteration": position.iteration, "epoch": position.epoch, **record})
                    bar.update(1)
                    bar.set_postfix(loss=f"{record['loss']:.3f}", epoch=position.epoch, refresh=False)
                    if position.iteration % recipe.checkpoint_every_iters == 0:
                        self.elapsed_s += time.perf_counter() - started
                        started = time.perf_counter()
                        self.save(self.checkpoint_name)
                position.epoch += 1
                position.batch_in_epoch = 0
                self.elapsed_s += time.perf_counter() - started
                validating = True
                self.end_of_epoch(log)
                validating = False
                self.save(self.checkpoint_name)
                barrier(self.context)
        except KeyboardInterrupt:
            if not validating:  # mid-validation the last checkpoint stays: the resume validates again
                self.save(self.checkpoint_name)
            raise
        finally:
            bar.close()


def run_loop(
    make_loop: Callable[[DistributedContext], TrainingLoop],
    loop_class: type[TrainingLoop],
    out_dir: str | Path,
    resume: bool,
    device: str,
    stop_at_epoch: int | None = None,
) -> TrainingLoop:
    """Run the loop ``make_loop`` builds in ``out_dir`` (see the module docstring); with
    ``stop_at_epoch`` only up to that epoch of its schedule, and unfinished (no ``finish``) when
    the schedule goes on past it."""
    out_dir = Path(out_dir)
    context = init_distributed(device)
    checkpoint = out_dir / loop_class.checkpoint_name
    check_run_directory(checkpoint, resume, loop_class.kind)
    loop = make_loop(context)
    if resume:
        loop.restore(checkpoint)
    if context.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(loop.config.to_yaml())
    resume_at = loop.position.iteration if resume else None
    log = MetricsLog(out_dir / loop.log_name, resume_at, enabled=context.is_main)
    loop.open_logs(resume_at)
    loop.run(log, stop_at_epoch)
    if loop.position.epoch < loop.recipe.epochs:
        return loop
    checksums = gather_object(context, parameter_checksum(loop.network))
    if len(set(checksums)) != 1:
        raise TrainingError(f"data-parallel ranks ended the {loop.kind} with different weights (checksums {checksums})")
    if context.is_main:
        loop.finish(checksums)
    barrier(context)
    return loop
