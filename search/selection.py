"""Choosing the genotype with the trained supernet: an evolutionary search over candidates scored
on the architecture set with the supernet's shared weights (``search.selection: evolution``).

After the weight-sharing search the alphas alone rank the ops by gradient signals, which short
searches make noisy and which drift to parameter-free ops. Here each candidate genotype is run
through the supernet with its path fixed and scored on the held-out architecture set (patients
of the train split the weights never saw; val and test stay untouched): by its detection loss
there (``selection_metric: loss``, the default: smooth even for a briefly trained supernet; the
same RNG state for every candidate, so the RoI samplers draw alike), or by DeepLesion's FROC
mean over 0.5-4 FPs after its BN statistics are recomputed for its path (``froc``), or by that
FROC mean after a short stand-alone training from scratch (``short_training``,
:mod:`search.short_training`: no shared weights, a training per candidate).

The population starts with the alpha-derived genotype and genotypes drawn from the alphas'
distribution; each generation keeps the best half and adds mutations of it (every position
redrawn with probability ``mutation``). Every candidate passes the derivation guards, and
candidates with more parameters than ``parameter_budget`` (by default the median of random
genotypes of the space, the benchmark's random arm; or another quantile of them) are not
considered. Every evaluation is logged to ``selection.jsonl``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from fsd.artifacts import restore_rng_state, rng_state
from fsd.config import SpaceSection
from fsd.engine.recalibration import recalibrate_batch_statistics
from fsd.models import DetectorConfig, Genotype, build_detector
from fsd.models.complexity import count_parameters
from search.derive import derive_genotype
from search.mixed_op import MixedOp


@dataclass(frozen=True)
class Candidate:
    genotype: Genotype
    choices: tuple[int, ...]
    parameters: int


class ArchitectureProxy(Protocol):
    """What scores candidates for the selection and ``fsd bench ranking`` (higher is better)."""

    @property
    def metric(self) -> str:
        """What a score is, in words (for reports)."""
        ...

    def score(self, candidate: Candidate) -> float: ...

    def score_genotype(self, genotype: Genotype) -> float: ...


def genotype_choices(genotype: Genotype, space: SpaceSection) -> tuple[int, ...]:
    """The op index of every searchable position (backbone blocks, then head edges)."""
    backbone = [list(space.backbone_ops).index(op) for stage in genotype.stages for op in stage.ops]
    head = [list(space.head_ops).index(edge.op) for edge in genotype.head_edges]
    return tuple(backbone + head)


def guarded_genotype(space: SpaceSection, choices: tuple[int, ...], max_parameter_free: int) -> Genotype:
    """The genotype of per-position choices after the derivation guards (which may change some)."""
    blocks = sum(stage.blocks for stage in space.stages)
    one_hot = [[1.0 if i == c else 0.0 for i in range(len(space.backbone_ops))] for c in choices[:blocks]]
    head = [[1.0 if i == c else 0.0 for i in range(len(space.head_ops))] for c in choices[blocks:]]
    return derive_genotype(space, one_hot, head, max_parameter_free)


def parameters_of(genotype: Genotype, detector_config: DetectorConfig) -> int:
    return count_parameters(build_detector(genotype, detector_config))


def random_parameter_quantile(space: SpaceSection, detector_config: DetectorConfig, max_parameter_free: int, quantile: float = 0.5, samples: int = 64) -> float:
    """The ``quantile`` (0.5: the median) of the parameter counts of random genotypes of the space
    (uniform op choices, guarded; the same draws for every quantile)."""
    rng = np.random.default_rng(12345)
    positions = sum(stage.blocks for stage in space.stages)
    edges = space.head_nodes * (space.head_nodes + 1) // 2
    counts = []
    for _ in range(samples):
        choices = tuple(int(c) for c in rng.integers(0, len(space.backbone_ops), positions)) + tuple(
            int(c) for c in rng.integers(0, len(space.head_ops), edges)
        )
        counts.append(parameters_of(guarded_genotype(space, choices, max_parameter_free), detector_config))
    return float(np.quantile(counts, quantile))


def fix_path(mixed_ops: list[MixedOp], choices: tuple[int, ...] | None) -> None:
    """Run exactly the chosen op at every position (None: back to sampling or mixing)."""
    for index, mixed in enumerate(mixed_ops):
        mixed.fixed = None if choices is None else choices[index]


class Evolution:
    """The evolutionary selection (see the module docstring)."""

    def __init__(
        self,
        space: SpaceSection,
        detector_config: DetectorConfig,
        alphas: list[list[float]],
        max_parameter_free: int,
        budget: float | None,
        seed: int,
    ) -> None:
        self.space = space
        self.detector_config = detector_config
        self.probabilities = [np.asarray(w, dtype=np.float64) / np.sum(w) for w in alphas]
        self.max_parameter_free = max_parameter_free
        self.budget = budget
        self.rng = np.random.default_rng(seed)
        self.scores: dict[tuple[int, ...], float] = {}
        self.candidates: dict[tuple[int, ...], Candidate] = {}

    def candidate(self, choices: tuple[int, ...]) -> Candidate:
        genotype = guarded_genotype(self.space, choices, self.max_parameter_free)
        guarded = genotype_choices(genotype, self.space)
        if guarded not in self.candidates:
            self.candidates[guarded] = Candidate(genotype, guarded, parameters_of(genotype, self.detector_config))
        return self.candidates[guarded]

    def within_budget(self, candidate: Candidate) -> bool:
        return self.budget is None or candidate.parameters <= self.budget

    def draw(self) -> tuple[int, ...]:
        return tuple(int(self.rng.choice(len(p), p=p)) for p in self.probabilities)

    def mutate(self, choices: tuple[int, ...], rate: float) -> tuple[int, ...]:
        return tuple(
            int(self.rng.choice(len(p), p=p)) if self.rng.random() < rate else c for c, p in zip(choices, self.probabilities)
        )

    def child(self, parents: list[Candidate], rate: float) -> tuple[int, ...]:
        """A mutation of a parent drawn at random."""
        return self.mutate(parents[int(self.rng.integers(len(parents)))].choices, rate)

    def fill(self, population: list[Candidate], size: int, make: Callable[[], tuple[int, ...]]) -> list[Candidate]:
        """Add new in-budget candidates made by ``make`` until ``population`` has ``size`` members."""
        seen = {c.choices for c in population}
        attempts = 0
        while len(population) < size and attempts < 50 * size:
            attempts += 1
            candidate = self.candidate(make())
            if candidate.choices not in seen and self.within_budget(candidate):
                population.append(candidate)
                seen.add(candidate.choices)
        return population

    def run(self, derived: Genotype, population: int, generations: int, mutation: float, score: Callable[[Candidate], float]) -> Candidate:
        start = self.candidate(genotype_choices(derived, self.space))
        members = self.fill([start] if self.within_budget(start) else [], population, self.draw)
        for generation in range(generations + 1):
            for member in members:
                if member.choices not in self.scores:
                    self.scores[member.choices] = score(member)
            if generation == generations:
                break
            ranked = sorted(members, key=lambda c: -self.scores[c.choices])
            parents = ranked[: max(population // 2, 1)]
            members = self.fill(list(parents), population, lambda parents=parents: self.child(parents, mutation))
        scored = [self.candidates[c] for c in self.scores if self.within_budget(self.candidates[c])]
        return max(scored, key=lambda c: (self.scores[c.choices], -c.parameters))


@torch.no_grad()
def negative_loss(model: nn.Module, batches: Iterable[Any], device: torch.device) -> float:
    """Minus the mean detection loss of ``model`` (training mode, no gradients) over ``batches``,
    from a fixed RNG state (put back afterwards)."""
    saved = rng_state()
    torch.manual_seed(0)
    model.train()
    total, count = 0.0, 0
    try:
        for images, targets in batches:
            losses, _ = model([i.to(device) for i in images], [{k: v.to(device) for k, v in t.items()} for t in targets])
            total += float(sum(losses.values()))
            count += 1
    finally:
        restore_rng_state(saved)
    return -total / max(count, 1)


def evaluate_candidate(
    model: nn.Module,
    mixed_ops: list[MixedOp],
    candidate: Candidate,
    calibration: Callable[[], Any] | None,
    calibration_batches: int,
    device: torch.device,
    scorer: Callable[[nn.Module], float],
) -> float:
    """The candidate's architecture-set score with the supernet's weights on its fixed path (BN
    statistics recomputed for that path first when ``calibration`` gives batches); the
    supernet's own buffers are put back after."""
    buffers = {name: tensor.clone() for name, tensor in model.named_buffers()}
    fix_path(mixed_ops, candidate.choices)
    try:
        if calibration is not None:
            recalibrate_batch_statistics(model, calibration(), device, calibration_batches)
        return scorer(model)
    finally:
        fix_path(mixed_ops, None)
        with torch.no_grad():
            for name, tensor in model.named_buffers():
                tensor.copy_(buffers[name])


def log_evaluations(path: Path, evolution: Evolution, chosen: Candidate) -> None:
    with path.open("w") as handle:
        for choices, score in evolution.scores.items():
            candidate = evolution.candidates[choices]
            handle.write(
                json.dumps(
                    {
                        "score": score,
                        "parameters": candidate.parameters,
                        "chosen": choices == chosen.choices,
                        "key": candidate.genotype.key,
                        "backbone": [op for stage in candidate.genotype.stages for op in stage.ops],
                        "head": [edge.op for edge in candidate.genotype.head_edges],
                    }
                )
                + "\n"
            )
