"""`fsd search`: first-order bilevel search of the supernet.

The train split is divided by patient into a weight set and an architecture set (the test and
val splits are never touched). Each iteration takes an SGD step on the network weights with a
weight-set batch; after ``warmup_epochs`` it also takes an Adam step on the architecture weights
(alphas) with an architecture-set batch, minimising the detection loss plus ``cost_weight`` times
the expected parameter count (millions) of the searchable positions.

Files in the run directory: ``genotype.json`` (the derived architecture), ``alphas.jsonl`` (the
softmax weights of every position after every epoch), ``alphas.png`` (how they evolved),
``search.jsonl`` (losses), ``search_last.pt`` (resumable checkpoint, every epoch).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from fsd.config import FsdConfig
from fsd.data.augment import AugmentConfig
from fsd.data.deeplesion import DeepLesionDataset, collate_detection
from fsd.data.dl_info import read_dl_info
from fsd.data.splits import patient_split, select_records
from fsd.engine.checkpoint import (
    atomic_save,
    check_run_directory,
    load_checkpoint,
    restore_rng_state,
    rng_state,
)
from fsd.engine.datasets import ensure_data
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
from fsd.engine.sampler import ResumableSampler
from fsd.engine.schedule import apply_lr, lr_at
from fsd.engine.trainer import AugmentedView, TrainingError
from fsd.errors import DataError
from fsd.models import DetectorConfig, Genotype
from fsd.nn import (
    clip_batch_instance_gates,
    norm_parameter_groups,
    update_sparse_radius,
)
from fsd.progress import progress_bar
from search.derive import derive_genotype
from search.plots import plot_alphas
from search.supernet import (
    architecture_parameters,
    backbone_mixed_ops,
    build_supernet,
    expected_parameters_millions,
    head_mixed_ops,
)


@dataclass
class SearchResult:
    genotype: Genotype
    genotype_path: Path
    seconds: float


def split_weight_and_arch_sets(config: FsdConfig) -> tuple[DeepLesionDataset, DeepLesionDataset]:
    """Weight set and architecture set: the train split divided by patient (never val or test)."""
    data = config.data
    records = read_dl_info(data.root / "DL_info.csv")
    train_records = select_records(records, "train", config.task, data.drop_noisy, data.type_split, data.split_seed)
    fraction = config.search.arch_val_fraction
    assignment = patient_split([r.patient for r in train_records], (1.0 - fraction, fraction, 0.0), config.seed + 17)
    weight_records = [r for r in train_records if assignment[r.patient] == "train"]
    arch_records = [r for r in train_records if assignment[r.patient] == "val"]
    if not weight_records or not arch_records:
        raise DataError(
            f"{data.root}: the train split has too few patients ({len({r.patient for r in train_records})}) to hold "
            f"out an architecture set; generate more patients"
        )
    kwargs = dict(task=config.task, preprocess=config.preprocess_config(), drop_noisy=data.drop_noisy, cache=data.cache)
    # records are already the train split of the task: re-selecting them as "train" keeps them all
    weight_set = DeepLesionDataset(data.root, split="train", records=_as_train(weight_records), **kwargs)
    arch_set = DeepLesionDataset(data.root, split="train", records=_as_train(arch_records), **kwargs)
    return weight_set, arch_set


def _as_train(records: list) -> list:
    import dataclasses

    return [dataclasses.replace(r, split=1) for r in records]


def _cycle(loader_factory: Any) -> Iterator:
    epoch = 0
    while True:
        yield from loader_factory(epoch)
        epoch += 1


def mixing_weights(model: nn.Module) -> dict[str, list[list[float]]]:
    with torch.no_grad():
        return {
            "backbone": [m.weights().tolist() for m in backbone_mixed_ops(model)],
            "head": [m.weights().tolist() for m in head_mixed_ops(model)],
        }


class Searcher:
    def __init__(self, config: FsdConfig, out_dir: Path, context: DistributedContext, progress: bool) -> None:
        self.config = config
        self.out_dir = out_dir
        self.context = context
        self.progress = progress and context.is_main
        self.device = context.device
        search = config.search
        ensure_data(config, context)
        self.weight_set, self.arch_set = split_weight_and_arch_sets(config)
        torch.manual_seed(config.seed)
        detector_config = DetectorConfig.from_config(config, norm=search.norm)
        model = build_supernet(search.space, detector_config, search.partial_channels).to(self.device)
        self.alphas = architecture_parameters(model)
        alpha_ids = {id(p) for p in self.alphas}
        groups = norm_parameter_groups(model, search.weight_decay)
        for group in groups:
            group["params"] = [p for p in group["params"] if id(p) not in alpha_ids]
        self.weight_optimizer = torch.optim.SGD([g for g in groups if g["params"]], lr=search.weight_lr, momentum=search.weight_momentum)
        self.arch_optimizer = torch.optim.Adam(
            self.alphas, lr=search.arch_lr, betas=search.arch_betas, weight_decay=search.arch_weight_decay
        )
        self.model = wrap_data_parallel(model, context, search.norm)
        augment = config.train.augment
        augment_config = AugmentConfig(augment.hflip, augment.scale_range, augment.translate_px, augment.intensity_jitter)
        self.weight_view = AugmentedView(self.weight_set, augment_config, config.seed)
        self.arch_view = AugmentedView(self.arch_set, augment_config, config.seed + 1)
        self.weight_sampler = ResumableSampler(len(self.weight_set), search.batch_size, config.seed, True, context.rank, context.world_size)
        self.arch_sampler = ResumableSampler(len(self.arch_set), search.batch_size, config.seed + 1, True, context.rank, context.world_size)
        per_epoch = self.weight_sampler.batches_per_epoch
        self.iters_per_epoch = min(per_epoch, search.max_iters_per_epoch or per_epoch)
        self.total_iters = self.iters_per_epoch * search.epochs
        self.epoch = 0
        self.iteration = 0
        self.elapsed = 0.0

    @property
    def network(self) -> nn.Module:
        return unwrap(self.model)

    def _loader(self, view: AugmentedView, sampler: ResumableSampler, epoch: int) -> DataLoader:
        view.epoch = epoch
        sampler.set_epoch(epoch)
        generator = torch.Generator()
        generator.manual_seed(self.config.seed + epoch)
        return DataLoader(
            view, batch_size=self.config.search.batch_size, sampler=sampler, collate_fn=collate_detection,
            num_workers=self.config.data.num_workers, generator=generator,
        )

    def _losses(self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        images = [i.to(self.device) for i in images]
        targets = [{k: v.to(self.device) for k, v in t.items()} for t in targets]
        losses, _ = self.model(images, targets)
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            raise TrainingError(f"search diverged at iteration {self.iteration}; lower search.weight_lr and resume")
        return loss

    def state(self) -> dict[str, Any]:
        return {
            "format": "fsd-search-checkpoint",
            "model": self.network.state_dict(),
            "weight_optimizer": self.weight_optimizer.state_dict(),
            "arch_optimizer": self.arch_optimizer.state_dict(),
            "epoch": self.epoch,
            "iteration": self.iteration,
            "elapsed": self.elapsed,
            "total_iters": self.total_iters,
            "rng": rng_state(),
        }

    def restore(self, path: Path) -> None:
        state = load_checkpoint(path)
        if state.get("total_iters") != self.total_iters:
            raise TrainingError(f"{path} was written with another search schedule; resume with the original config")
        self.network.load_state_dict(state["model"])
        self.weight_optimizer.load_state_dict(state["weight_optimizer"])
        self.arch_optimizer.load_state_dict(state["arch_optimizer"])
        self.epoch = int(state["epoch"])
        self.iteration = int(state["iteration"])
        self.elapsed = float(state.get("elapsed", 0.0))
        restore_rng_state(state["rng"])

    def run(self, log: MetricsLog, alpha_log: MetricsLog) -> None:
        search = self.config.search
        bar = progress_bar(total=self.total_iters, initial=self.iteration, desc="search", disable=not self.progress)
        arch_batches = _cycle(lambda e: self._loader(self.arch_view, self.arch_sampler, self.epoch * 1000 + e))
        while self.epoch < search.epochs:
            started = time.perf_counter()
            self.model.train()
            for batch_index, (images, targets) in enumerate(self._loader(self.weight_view, self.weight_sampler, self.epoch)):
                if batch_index >= self.iters_per_epoch:
                    break
                lr = lr_at(self.iteration, self.total_iters, search.weight_lr, 0, 0.05)
                apply_lr(self.weight_optimizer, lr)
                update_sparse_radius(self.model, self.iteration / max(self.total_iters - 1, 1))
                weight_loss = self._losses(images, targets)
                self.weight_optimizer.zero_grad(set_to_none=True)
                weight_loss.backward()
                nn.utils.clip_grad_norm_([p for g in self.weight_optimizer.param_groups for p in g["params"]], search.grad_clip)
                self.weight_optimizer.step()
                clip_batch_instance_gates(self.model)
                record: dict[str, Any] = {"type": "search", "iteration": self.iteration + 1, "epoch": self.epoch, "weight_loss": float(weight_loss.detach()), "lr": lr}
                if self.epoch >= search.warmup_epochs:
                    arch_images, arch_targets = next(arch_batches)
                    arch_loss = self._losses(arch_images, arch_targets)
                    cost = expected_parameters_millions(self.network)
                    self.arch_optimizer.zero_grad(set_to_none=True)
                    (arch_loss + search.cost_weight * cost).backward()
                    self.arch_optimizer.step()
                    self.weight_optimizer.zero_grad(set_to_none=True)
                    record.update({"arch_loss": float(arch_loss.detach()), "expected_params_m": float(cost.detach())})
                self.iteration += 1
                log.write(record)
                bar.update(1)
                bar.set_postfix(loss=f"{record['weight_loss']:.3f}", epoch=self.epoch, refresh=False)
            self.epoch += 1
            self.elapsed += time.perf_counter() - started
            alpha_log.write({"iteration": self.iteration, "epoch": self.epoch, **mixing_weights(self.network)})
            if self.context.is_main:
                atomic_save(self.state(), self.out_dir / "search_last.pt")
            barrier(self.context)
        bar.close()

    def derive(self) -> Genotype:
        weights = mixing_weights(self.network)
        search = self.config.search
        return derive_genotype(
            search.space,
            weights["backbone"],
            weights["head"],
            search.max_parameter_free_backbone,
            provenance={
                "run": str(self.out_dir),
                "config": self.config.name,
                "seed": self.config.seed,
                "epochs": search.epochs,
                "iterations": self.iteration,
                "norm": search.norm,
                "cost_weight": search.cost_weight,
                "partial_channels": search.partial_channels,
                "search_seconds": round(self.elapsed, 1),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )


def search(config: FsdConfig, out_dir: str | Path, resume: bool = False, device: str = "auto", progress: bool = True) -> SearchResult:
    """Run the search into ``out_dir`` and write ``genotype.json`` (see the module docstring)."""
    out_dir = Path(out_dir)
    context = init_distributed(device)
    checkpoint = out_dir / "search_last.pt"
    check_run_directory(checkpoint, resume, "search")
    searcher = Searcher(config, out_dir, context, progress)
    if resume:
        searcher.restore(checkpoint)
    if context.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(config.to_yaml())
    resume_at = searcher.iteration if resume else None
    log = MetricsLog(out_dir / "search.jsonl", resume_at, enabled=context.is_main)
    alpha_log = MetricsLog(out_dir / "alphas.jsonl", resume_at, enabled=context.is_main)
    searcher.run(log, alpha_log)
    checksums = gather_object(context, parameter_checksum(unwrap(searcher.model)))
    if len(set(checksums)) != 1:
        raise TrainingError(f"data-parallel ranks ended the search with different weights or alphas (checksums {checksums})")
    genotype = searcher.derive()
    path = out_dir / "genotype.json"
    if context.is_main:
        genotype.save(path)
        plot_alphas(out_dir / "alphas.jsonl", config.search.space, out_dir / "alphas.png")
        summary = {"seconds": searcher.elapsed, "iterations": searcher.iteration, "world_size": context.world_size,
                   "rank_checksums": checksums, "genotype": genotype.to_dict()}
        (out_dir / "search_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    barrier(context)
    return SearchResult(genotype=genotype, genotype_path=path, seconds=searcher.elapsed)


def random_genotype(config: FsdConfig, seed: int) -> Genotype:
    """A uniformly random architecture from the same space (the benchmark's control)."""
    space = config.search.space
    rng = np.random.default_rng(seed)
    backbone = [list(rng.dirichlet(np.ones(len(space.backbone_ops)))) for _ in range(sum(s.blocks for s in space.stages))]
    edges = (space.head_nodes * (space.head_nodes + 1)) // 2
    head = [list(rng.dirichlet(np.ones(len(space.head_ops)))) for _ in range(edges)]
    return derive_genotype(space, backbone, head, config.search.max_parameter_free_backbone, {"source": f"random seed {seed}"})
