"""Candidates scored by training them: each genotype trains stand-alone from scratch for
``search.short_training_epochs`` epochs of the ``train`` recipe on the weight set, and its score
is DeepLesion's FROC mean over 0.5-4 FPs on the architecture set (its best recalibrated
validation, as ``fsd train`` chooses checkpoints) (``search.selection_metric: short_training``).

Why: ``fsd bench ranking`` measured the supernet's shared-weight scores (loss or FROC) ranking the
space at chance, while stand-alone validation ranks it well (val against test). A short
stand-alone training is a lower-fidelity copy of what the ranking is measured against, at the
price of a training per candidate instead of a forward pass.

Each candidate trains in its own run directory under ``root``, named by the architecture's hash
(:attr:`fsd.models.Genotype.key`), and leaves ``score.json`` when done: a killed selection resumes
from the candidate's last checkpoint, and a candidate met again (another generation, or the
ranking benchmark scoring the same search's architectures) is not trained twice. The seed of
every candidate is the search's seed, so candidates differ by architecture only.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from fsd.artifacts import load_checkpoint
from fsd.config import FsdConfig
from fsd.data.deeplesion import DeepLesionDataset
from fsd.engine.loop import TrainingError
from fsd.engine.trainer import TrainResult, train
from fsd.errors import FsdError
from fsd.models import Genotype, architecture_record
from search.candidate_runs import settings_key, validation_at
from search.selection import Candidate

SCORE_FILE = "score.json"


def short_training_config(config: FsdConfig) -> FsdConfig:
    """The ``train`` recipe cut to ``search.short_training_epochs`` epochs, validated once at the
    end, its learning-rate warm-up cut in the same proportion (a full warm-up would take most of
    a short run)."""
    train = config.train
    epochs = config.search.short_training_epochs
    warmup = max(1, round(train.warmup_iters * epochs / train.epochs)) if train.warmup_iters else 0
    recipe = train.model_copy(update={"epochs": epochs, "eval_every_epochs": epochs, "warmup_iters": warmup})
    return config.model_copy(update={"train": recipe, "name": f"{config.name}-short-training"})


class ShortTrainingProxy:
    """Scores candidates by a short stand-alone training (see the module docstring)."""

    metric = "FROC mean 0.5-4 after a short stand-alone training"

    def __init__(
        self,
        config: FsdConfig,
        weight_set: DeepLesionDataset,
        arch_set: DeepLesionDataset,
        root: Path,
        device: torch.device,
    ) -> None:
        self.config = short_training_config(config)
        #: what a stored score depends on beside the architecture (compared when it is read again)
        self.settings = settings_key(self.config)
        self.datasets = (weight_set, arch_set)
        self.root = Path(root)
        self.device = device

    def run_directory(self, genotype: Genotype) -> Path:
        return self.root / genotype.key

    def score_genotype(self, genotype: Genotype) -> float:
        """The candidate's architecture-set FROC mean after its short training (0 when no
        validation gave a finite score, or the training diverged)."""
        run = self.run_directory(genotype)
        done = run / SCORE_FILE
        if done.is_file():
            record = json.loads(done.read_text())
            if record.get("settings", self.settings) != self.settings:  # files of before the check carry none
                raise FsdError(f"{run} was trained with other settings than this search's; use another --out")
            return float(record["score"])
        record = {"metric": self.metric, "genotype": genotype.to_dict(), "epochs": self.config.train.epochs, "settings": self.settings}
        try:
            result = self.train(genotype, run)
        except TrainingError as error:
            record.update({"score": 0.0, "failed": str(error)})
        else:
            score = float(result.best_metric) if result.best_metric is not None else 0.0
            record.update({"score": score, "iterations": result.iterations})
        temporary = done.with_suffix(".tmp")
        temporary.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(temporary, done)
        return float(record["score"])

    def train(self, genotype: Genotype, run: Path) -> TrainResult:
        """Train the candidate into ``run``, resuming it; a run stopped at its end but before its
        validation was written (killed while validating) starts over."""
        if (run / "last.pt").is_file() and validation_at(run, self.config.train.epochs) is None:
            position = load_checkpoint(run / "last.pt", kind="train").position
            if position.epoch >= self.config.train.epochs:
                shutil.rmtree(run)
        return train(
            self.config,
            architecture_record(genotype=genotype),
            run,
            resume=(run / "last.pt").is_file(),
            device=str(self.device),
            progress=False,
            datasets=self.datasets,
        )

    def score(self, candidate: Candidate) -> float:
        return self.score_genotype(candidate.genotype)
