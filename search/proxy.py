"""The supernet as a proxy: any architecture of the space scored with a trained supernet's shared
weights, the way the evolutionary selection scores its candidates (:mod:`search.selection`).

What enters: a trained supernet (the search's network, or its ``search_last.pt``), the
architecture set it never trained its weights on, and candidate genotypes. What leaves: one
score per candidate, higher is better: minus the detection loss on the architecture set
(``search.selection_metric: loss``), or DeepLesion's FROC mean over 0.5-4 FPs after the
candidate's BN statistics are recomputed for its path (``froc``). The search's own selection and
``fsd bench ranking`` (how well these scores rank architectures against stand-alone training)
use this one scorer, so the ranking measures exactly what the selection relies on.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from fsd.artifacts import ArtifactError, load_checkpoint
from fsd.config import FsdConfig, SpaceSection
from fsd.data.deeplesion import DeepLesionDataset, collate_detection
from fsd.engine.prediction import predict_dataset, score_predictions
from fsd.models import DetectorConfig, Genotype
from fsd.nn import revert_sync_switchnorm
from search.mixed_op import MixedOp
from search.selection import Candidate, evaluate_candidate, genotype_choices, negative_loss, parameters_of
from search.supernet import build_supernet

#: a search run's resumable checkpoint, which holds the trained supernet when the search finished
SEARCH_CHECKPOINT = "search_last.pt"


class SupernetProxy:
    """Scores candidates on a private copy of a trained supernet (its weights are not changed)."""

    def __init__(
        self,
        supernet: nn.Module,
        config: FsdConfig,
        arch_set: DeepLesionDataset,
        calibration: Callable[[], Iterable[Any]] | None,
        device: torch.device,
    ) -> None:
        self.config = config
        self.arch_set = arch_set
        self.device = device
        self.model = revert_sync_switchnorm(copy.deepcopy(supernet)).to(device).eval()
        self.mixed_ops = [m for m in self.model.modules() if isinstance(m, MixedOp)]
        for mixed in self.mixed_ops:
            mixed.draw(None, 1.0)
        self.calibration = calibration if config.search.selection_metric == "froc" else None

    @property
    def metric(self) -> str:
        """What a score is, in words (for reports)."""
        return "minus the detection loss" if self.config.search.selection_metric == "loss" else "FROC mean 0.5-4"

    def scorer(self, model: nn.Module) -> float:
        """The architecture-set score of ``model`` (its path already fixed)."""
        search = self.config.search
        if search.selection_metric == "loss":
            batches = DataLoader(self.arch_set, batch_size=search.batch_size, collate_fn=collate_detection)
            return negative_loss(model, batches, self.device)
        settings = self.config.eval
        predictions = predict_dataset(model.eval(), self.arch_set, self.device, settings.batch_size, progress=False)
        return float(score_predictions(predictions, self.arch_set.num_classes, settings.fps, settings.iou)["froc_mean_0.5_4"])

    def score(self, candidate: Candidate) -> float:
        """The candidate's score on the architecture set (see the module docstring)."""
        return evaluate_candidate(
            self.model, self.mixed_ops, candidate, self.calibration, self.config.search.selection_batches, self.device, self.scorer
        )

    def score_genotype(self, genotype: Genotype) -> float:
        """The score of a genotype of this supernet's space (ArtifactError for any other)."""
        problem = outside_space(genotype, self.config.search.space)
        if problem:
            raise ArtifactError(f"cannot score a genotype outside the searched space: {problem}")
        choices = genotype_choices(genotype, self.config.search.space)
        return self.score(Candidate(genotype, choices, parameters_of(genotype, DetectorConfig.from_config(self.config))))


def outside_space(genotype: Genotype, space: SpaceSection) -> str | None:
    """Why ``genotype`` is not an architecture of ``space`` (None when it is one)."""
    if genotype.stem_channels != space.stem_channels:
        return f"stem of {genotype.stem_channels} channels, the space has {space.stem_channels}"
    shape = [(stage.width, len(stage.ops)) for stage in genotype.stages]
    wanted = [(stage.width, stage.blocks) for stage in space.stages]
    if shape != wanted:
        return f"stages (width, blocks) {shape}, the space has {wanted}"
    if (genotype.head_channels, genotype.head_nodes) != (space.head_channels, space.head_nodes):
        return f"head of {genotype.head_nodes} nodes x {genotype.head_channels} channels, the space has {space.head_nodes} x {space.head_channels}"
    foreign = sorted(set(genotype.backbone_ops) - set(space.backbone_ops)) + sorted({e.op for e in genotype.head_edges} - set(space.head_ops))
    if foreign:
        return f"ops {', '.join(foreign)} are not candidates of the space"
    return None


def load_supernet(run_dir: Path, device: torch.device) -> tuple[nn.Module, FsdConfig]:
    """The trained supernet of a finished search run (its :data:`SEARCH_CHECKPOINT`, on the CPU:
    the proxy moves its own copy to the device) and the search's config."""
    path = run_dir / SEARCH_CHECKPOINT
    checkpoint = load_checkpoint(path, kind="search")
    if checkpoint.position.iteration < checkpoint.position.total_iters:
        raise ArtifactError(
            f"{path}: the search stopped at iteration {checkpoint.position.iteration} of {checkpoint.position.total_iters}; finish it first"
        )
    config = checkpoint.config
    supernet = build_supernet(config.search.space, checkpoint.detector_config, config.search.partial_channels)
    supernet.load_state_dict(checkpoint.model)
    return supernet, config
