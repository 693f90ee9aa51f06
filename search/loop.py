"""`fsd search`: first-order bilevel search of the supernet, on the library's training loop.

The train split is divided by patient into a weight set and an architecture set (the test and
val splits are never touched). Each iteration is the training loop's weight step on a weight-set
batch; after ``warmup_epochs`` this module adds an Adam step on the architecture weights
(alphas) with an architecture-set batch, minimising the detection loss plus ``cost_weight``
times the expected parameter count (millions) of the searchable positions.

With ``method: gdas`` every step runs one op per position, drawn by hard Gumbel-softmax from
the alphas (:mod:`search.mixed_op`); the noise comes from a generator seeded by (seed,
iteration, step), so every data-parallel rank draws the same path and a resumed search the
same paths as an uninterrupted one. The temperature falls linearly from ``tau_start`` to
``tau_end``. During the warm-up the alphas are still uniform, so the paths are uniform samples
and every op's weights train. With ``method: darts`` every op runs at every position.

Files in the run directory: ``genotype.json`` (the derived architecture), ``alphas.jsonl`` (after
every epoch: the softmax weights of every position, their normalised entropy, the op the
derivation would choose and its margin over the strongest other op), ``alphas.png`` (how they
evolved), ``search.jsonl`` (losses), ``search_last.pt`` (resumable checkpoint),
``search_summary.json``; with ``selection: evolution`` also ``selection.jsonl`` (every candidate
evaluated, :mod:`search.selection`), and with ``selection_metric: short_training`` each
candidate's short training in ``candidates/<architecture hash>/``; with ``selection: halving``
``selection.jsonl`` (every candidate's score at each rung it reached) and each candidate's
training in ``candidates/<architecture hash>/`` (:mod:`search.halving`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fsd.config import FsdConfig, SpaceSection
from fsd.data.deeplesion import DeepLesionDataset
from fsd.data.splits import patient_split
from fsd.engine.datasets import build_dataset, split_records
from fsd.engine.distributed import DistributedContext
from fsd.engine.loop import Batch, EpochBatches, TrainingLoop, run_loop
from fsd.engine.metrics_log import MetricsLog
from fsd.engine.recipe import Recipe
from fsd.errors import ConfigError, DataError
from fsd.models import DetectorConfig, Genotype, load_genotype
from fsd.progress import progress_bar
from search.derive import derive_genotype
from search.halving import HalvingSelection, log_rungs, rung_records
from search.mixed_op import MixedOp
from search.plots import plot_alphas
from search.proxy import SEARCH_CHECKPOINT, SupernetProxy, load_supernet
from search.selection import (
    ArchitectureProxy,
    Candidate,
    Evolution,
    genotype_choices,
    log_evaluations,
    random_parameter_quantile,
)
from search.short_training import ShortTrainingProxy
from search.supernet import (
    architecture_parameters,
    backbone_mixed_ops,
    build_supernet,
    expected_parameters_millions,
    head_mixed_ops,
)

#: where the short-training selection trains its candidates, inside the search's run directory
CANDIDATES_DIRECTORY = "candidates"

#: the weight-set batches that recompute a candidate's BN statistics come from this epoch's order
SELECTION_EPOCH = 2_000_000
#: the architecture-set batches of the k-th pass over that set, started during search epoch e,
#: come in the order of sampler epoch ``e * ARCH_EPOCH_STRIDE + k``
ARCH_EPOCH_STRIDE = 1000


@dataclass
class SearchResult:
    genotype: Genotype
    genotype_path: Path
    seconds: float


def split_weight_and_arch_sets(config: FsdConfig) -> tuple[DeepLesionDataset, DeepLesionDataset]:
    """Weight set and architecture set: the train split divided by patient (never val or test)."""
    train_records = split_records(config, "train")
    fraction = config.search.arch_val_fraction
    assignment = patient_split([r.patient for r in train_records], (1.0 - fraction, fraction, 0.0), config.seed + 17)
    weight_records = [r for r in train_records if assignment[r.patient] == "train"]
    arch_records = [r for r in train_records if assignment[r.patient] == "val"]
    if not weight_records or not arch_records:
        raise DataError(
            f"{config.data.root}: the train split has too few patients ({len({r.patient for r in train_records})}) to "
            f"hold out an architecture set; generate more patients"
        )
    return (
        build_dataset(config, records=weight_records, name="weight set"),
        build_dataset(config, records=arch_records, name="architecture set"),
    )


class ArchitectureBatches:
    """Endless architecture-set batches whose position (pass, sampler epoch, batch) a checkpoint
    carries, so a resumed search draws exactly the batches an uninterrupted one would."""

    def __init__(self, batches: EpochBatches) -> None:
        self.batches = batches
        self.passes = 0
        self.sampler_epoch = 0
        self.batch = 0
        self._iterator: Iterator[Batch] | None = None

    def next(self, search_epoch: int) -> Batch:
        while True:
            if self._iterator is None:
                if self.batch == 0:
                    self.sampler_epoch = search_epoch * ARCH_EPOCH_STRIDE + self.passes
                self._iterator = iter(self.batches.loader(self.sampler_epoch, self.batch))
            try:
                item = next(self._iterator)
            except StopIteration:
                self._iterator = None
                self.passes += 1
                self.batch = 0
                continue
            self.batch += 1
            return item

    def state(self) -> dict[str, int]:
        return {"passes": self.passes, "sampler_epoch": self.sampler_epoch, "batch": self.batch}

    def load_state(self, state: dict[str, int]) -> None:
        self.passes, self.sampler_epoch, self.batch = int(state["passes"]), int(state["sampler_epoch"]), int(state["batch"])
        self._iterator = None


def mixing_weights(model: nn.Module) -> dict[str, list[list[float]]]:
    with torch.no_grad():
        return {
            "backbone": [m.weights().tolist() for m in backbone_mixed_ops(model)],
            "head": [m.weights().tolist() for m in head_mixed_ops(model)],
        }


def normalised_entropy(weights: list[float]) -> float:
    """Entropy of a weight vector over log(K): 1 for uniform weights, 0 for a one-hot choice."""
    values = np.clip(np.asarray(weights, dtype=np.float64), 1e-12, 1.0)
    return float(-(values * np.log(values)).sum() / np.log(len(values))) if len(values) > 1 else 0.0


def choice_margin(weights: list[float], names: list[str], chosen: str) -> float:
    """How far the chosen op's weight leads the strongest other op (negative: a guard overrode the
    strongest op)."""
    index = names.index(chosen)
    others = [w for i, w in enumerate(weights) if i != index]
    return float(weights[index] - max(others)) if others else 1.0


def search_state(weights: dict[str, list[list[float]]], genotype: Genotype, space: SpaceSection) -> dict[str, Any]:
    """Per position: entropy of its weights, the op derived from them, and that op's margin."""
    backbone_ops = [op for stage in genotype.stages for op in stage.ops]
    head_ops = [edge.op for edge in genotype.head_edges]
    names = {"backbone": list(space.backbone_ops), "head": list(space.head_ops)}
    chosen = {"backbone": backbone_ops, "head": head_ops}
    return {
        "entropy": {part: [normalised_entropy(w) for w in weights[part]] for part in ("backbone", "head")},
        "chosen": chosen,
        "margin": {
            part: [choice_margin(w, names[part], op) for w, op in zip(weights[part], chosen[part])]
            for part in ("backbone", "head")
        },
    }


class Searcher(TrainingLoop):
    """The supernet's training loop with the architecture step (see the module docstring)."""

    kind = "search"
    checkpoint_name = SEARCH_CHECKPOINT
    log_name = "search.jsonl"
    lr_key = "search.weight_lr"

    def __init__(self, config: FsdConfig, out_dir: Path, context: DistributedContext, progress: bool) -> None:
        search = config.search
        trains_candidates = search.selection == "halving" or (search.selection == "evolution" and search.selection_metric == "short_training")
        if trains_candidates and context.world_size > 1:
            raise ConfigError(f"search.selection {search.selection} ({search.selection_metric}) trains candidates in one process: run this search without torchrun")
        if search.selection == "halving" and search.halving_rungs[-1] > config.train.epochs:
            raise ConfigError(f"search.halving_rungs go to epoch {search.halving_rungs[-1]}, past train.epochs ({config.train.epochs})")
        weight_set, arch_set = split_weight_and_arch_sets(config)
        torch.manual_seed(config.seed)
        detector_config = DetectorConfig.from_config(config, norm=search.norm)
        model = build_supernet(search.space, detector_config, search.partial_channels).to(context.device)
        self.alphas = architecture_parameters(model)
        architecture = {"kind": "supernet", "space": search.space.model_dump(mode="json")}
        self.mixed_ops = [m for m in model.modules() if isinstance(m, MixedOp)]
        self.sampling = search.method == "gdas"
        super().__init__(
            config,
            architecture,
            detector_config,
            model,
            weight_set,
            Recipe.for_search(search),
            out_dir,
            context,
            progress,
            frozen_from_weight_step=frozenset(id(p) for p in self.alphas),
            parameters_may_go_unused=self.sampling,
        )
        self.arch_optimizer = torch.optim.Adam(
            self.alphas, lr=search.arch_lr, betas=search.arch_betas, weight_decay=search.arch_weight_decay
        )
        self.arch_set = arch_set
        self.arch_batches = ArchitectureBatches(
            EpochBatches(arch_set, config.train.augment, config.seed + 1, search.batch_size, context, config.data.num_workers, config.seed)
        )
        self.alpha_log: MetricsLog | None = None

    def open_logs(self, resume_iteration: int | None) -> None:
        self.alpha_log = MetricsLog(self.out_dir / "alphas.jsonl", resume_iteration, enabled=self.context.is_main)

    @property
    def temperature(self) -> float:
        search = self.config.search
        progress = self.position.iteration / max(self.position.total_iters - 1, 1)
        return search.tau_start + (search.tau_end - search.tau_start) * progress

    def draw_paths(self, step: int) -> None:
        """This iteration's sampled path (``step`` 0: weight step, 1: architecture step)."""
        if not self.sampling:
            return
        generator = torch.Generator().manual_seed((self.config.seed * 1_000_003 + self.position.iteration) * 2 + step)
        tau = self.temperature
        for mixed in self.mixed_ops:
            mixed.draw(generator, tau)

    def before_step(self) -> None:
        self.draw_paths(0)

    def after_step(self, record: dict[str, Any]) -> None:
        search = self.config.search
        if self.sampling:
            record["tau"] = self.temperature
        if self.position.epoch < search.warmup_epochs:
            return
        self.draw_paths(1)
        arch_loss, _ = self.losses(self.arch_batches.next(self.position.epoch))
        cost = expected_parameters_millions(self.network)
        self.arch_optimizer.zero_grad(set_to_none=True)
        (arch_loss + search.cost_weight * cost).backward()
        self.arch_optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        record.update({"arch_loss": float(arch_loss.detach()), "expected_params_m": float(cost.detach())})

    def end_of_epoch(self, log: MetricsLog) -> None:
        assert self.alpha_log is not None, "open_logs runs before the loop"
        weights = mixing_weights(self.network)
        state = search_state(weights, self.derive(), self.config.search.space)
        self.alpha_log.write({"iteration": self.position.iteration, "epoch": self.position.epoch, **weights, **state})

    def extra_state(self) -> dict[str, Any]:
        return {"arch_optimizer": self.arch_optimizer.state_dict(), "arch_batches": self.arch_batches.state()}

    def load_extra_state(self, extra: dict[str, Any]) -> None:
        self.arch_optimizer.load_state_dict(extra["arch_optimizer"])
        self.arch_batches.load_state(extra["arch_batches"])

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
                "iterations": self.position.iteration,
                "norm": search.norm,
                "cost_weight": search.cost_weight,
                "partial_channels": search.partial_channels,
                "search_seconds": round(self.elapsed_s, 1),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )

    def select(self) -> Genotype:
        """The genotype to retrain: the alpha-derived one, or the evolution's choice."""
        derived = self.derive()
        search = self.config.search
        if search.selection == "alphas":
            return derived
        space = search.space
        retrain_config = DetectorConfig.from_config(self.config)
        quantile = {"random_median": 0.5, "random_quantile": search.parameter_budget_quantile}.get(search.parameter_budget)
        budget = None if quantile is None else random_parameter_quantile(space, retrain_config, search.max_parameter_free_backbone, quantile)
        weights = mixing_weights(self.network)
        evolution = Evolution(space, retrain_config, weights["backbone"] + weights["head"], search.max_parameter_free_backbone, budget, self.config.seed)
        if search.selection == "halving":
            return self.halve(derived, evolution, budget)
        proxy: ArchitectureProxy = (
            ShortTrainingProxy(self.config, self.dataset, self.arch_set, self.out_dir / CANDIDATES_DIRECTORY, self.device)
            if search.selection_metric == "short_training"
            else SupernetProxy(self.network, self.config, self.arch_set, lambda: self.batches.loader(SELECTION_EPOCH), self.device)
        )
        bar = progress_bar(total=search.population * (search.generations + 1), desc="select", disable=not self.progress)

        def score(candidate: Candidate) -> float:
            value = proxy.score(candidate)
            bar.update(1)
            return value

        try:
            chosen = evolution.run(derived, search.population, search.generations, search.mutation, score)
        finally:
            bar.close()
        log_evaluations(self.out_dir / "selection.jsonl", evolution, chosen)
        provenance = {
            **derived.search,
            "selection": "evolution",
            "selection_score": evolution.scores[chosen.choices],
            "candidates_evaluated": len(evolution.scores),
            "parameter_budget": budget,
            "parameters": chosen.parameters,
            "alpha_derived": {"backbone": [op for st in derived.stages for op in st.ops], "head": [e.op for e in derived.head_edges]},
        }
        return dataclasses.replace(chosen.genotype, search=provenance)

    def halve(self, derived: Genotype, evolution: Evolution, budget: float | None) -> Genotype:
        """Successive halving over the alpha-derived genotype and draws from the alphas."""
        search = self.config.search
        start = evolution.candidate(genotype_choices(derived, search.space))
        candidates = evolution.fill([start] if evolution.within_budget(start) else [], search.population, evolution.draw)
        if search.halving_data == "train_val":
            datasets = (build_dataset(self.config, "train"), build_dataset(self.config, "val"))
        else:
            datasets = (self.dataset, self.arch_set)
        halving = HalvingSelection(self.config, *datasets, self.out_dir / CANDIDATES_DIRECTORY, self.device, self.progress)
        chosen, scores = halving.run(candidates)
        rungs = rung_records(candidates, scores, chosen, halving.final_seed_scores)
        log_rungs(self.out_dir / "selection.jsonl", rungs)
        provenance = {
            **derived.search,
            "selection": "halving",
            "selection_score": scores[chosen.choices][search.halving_rungs[-1]],
            "halving_rungs": list(search.halving_rungs),
            "halving_data": search.halving_data,
            "halving_final_seeds": search.halving_final_seeds,
            "candidates_evaluated": len(candidates),
            "parameter_budget": budget,
            "parameters": chosen.parameters,
            "alpha_derived": {"backbone": derived.backbone_ops, "head": [e.op for e in derived.head_edges]},
            # kept with the genotype (and so in the benchmarks' committed search records): which
            # candidates the selection weighed and how each scored
            "candidates": rungs,
        }
        return dataclasses.replace(chosen.genotype, search=provenance)

    def finish(self, checksums: list[str]) -> None:
        started = time.perf_counter()
        genotype = self.select()
        # the selection's wall time (successive halving trains candidates: most of a search's
        # time); a selection resumed after a kill counts its last sitting only
        selection_s = time.perf_counter() - started
        genotype.save(self.out_dir / "genotype.json")
        plot_alphas(self.out_dir / "alphas.jsonl", self.config.search.space, self.out_dir / "alphas.png")
        summary = {
            "seconds": self.elapsed_s + selection_s,
            "supernet_seconds": self.elapsed_s,
            "selection_seconds": selection_s,
            "iterations": self.position.iteration,
            "world_size": self.context.world_size,
            "rank_checksums": checksums,
            "genotype": genotype.to_dict(),
        }
        (self.out_dir / "search_summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def search(config: FsdConfig, out_dir: str | Path, resume: bool = False, device: str = "auto", progress: bool = True) -> SearchResult:
    """Run the search into ``out_dir`` and write ``genotype.json`` (see the module docstring)."""
    out_dir = Path(out_dir)
    searcher = run_loop(lambda context: Searcher(config, out_dir, context, progress), Searcher, out_dir, resume, device)
    path = out_dir / "genotype.json"
    return SearchResult(genotype=load_genotype(path), genotype_path=path, seconds=searcher.elapsed_s)


def supernet_proxy(run_dir: str | Path, device: torch.device, metric: str | None = None) -> ArchitectureProxy:
    """The proxy of a finished search run, scoring on its own architecture set with the search's
    own ``selection_metric`` or ``metric``: its trained supernet (:mod:`search.proxy`), or for
    ``short_training`` a short stand-alone training of each architecture on its weight set
    (:mod:`search.short_training`; the runs go to the search's own candidate directory, so a
    candidate its selection trained is not trained again). With ``froc`` the BN statistics are
    recomputed on the weight set's batches as a single process draws them, which for a
    data-parallel search is not the share rank 0 used in its selection; ``loss`` uses no such
    batches."""
    run_dir = Path(run_dir)
    supernet, config = load_supernet(run_dir, device)
    if metric is not None:
        config = config.model_copy(update={"search": config.search.model_copy(update={"selection_metric": metric})})
    weight_set, arch_set = split_weight_and_arch_sets(config)
    if config.search.selection_metric == "short_training":
        return ShortTrainingProxy(config, weight_set, arch_set, run_dir / CANDIDATES_DIRECTORY, device)
    search = config.search
    batches = EpochBatches(
        weight_set, config.train.augment, config.seed, search.batch_size, DistributedContext(rank=0, world_size=1, local_rank=0, device=device), config.data.num_workers, config.seed
    )
    return SupernetProxy(supernet, config, arch_set, lambda: batches.loader(SELECTION_EPOCH), device)


def random_genotype(config: FsdConfig, seed: int) -> Genotype:
    """A uniformly random architecture from the same space (the benchmark's control)."""
    space = config.search.space
    rng = np.random.default_rng(seed)
    backbone = [list(rng.dirichlet(np.ones(len(space.backbone_ops)))) for _ in range(sum(s.blocks for s in space.stages))]
    edges = (space.head_nodes * (space.head_nodes + 1)) // 2
    head = [list(rng.dirichlet(np.ones(len(space.head_ops)))) for _ in range(edges)]
    return derive_genotype(space, backbone, head, config.search.max_parameter_free_backbone, {"source": f"random seed {seed}"})
