"""Choosing the genotype by successive halving (``search.selection: halving``): candidates trained
stand-alone with the whole ``train`` recipe on the weight set, the weaker half dropped at each
rung, so that full trainings go only to the candidates that survive.

Why: ``fsd bench ranking`` found the supernet's scores ranking the space at chance, and the
stand-alone trainings' own learning curves show when the ranks settle: on that benchmark's 14
architectures the validation FROC after 1/3 of the recipe ranks the final one at Kendall tau
0.30, after 2/3 at 0.60 (docs/benchmarks.md). One short training is noise; successive halving
(Jamieson and Talwalkar 2016, the core of Hyperband) keeps training what still looks good.

The candidates: ``search.population`` genotypes, the alpha-derived one and draws from the
alphas' distribution, each within the parameter budget (as the evolutionary selection draws
them). At each rung of ``search.halving_rungs`` (epochs of the ``train`` recipe, whose
learning-rate schedule stays the whole recipe's) every surviving candidate trains up to that
epoch and is scored by DeepLesion's FROC mean over 0.5-4 FPs on the architecture set (after its
BN statistics are recomputed, as ``fsd train`` validates); the better half, rounded up, goes on,
ties broken by fewer parameters. The last rung's best is the genotype. With
``search.halving_final_seeds`` above 1, each candidate of the last rung also trains with further
training seeds (the search's seed plus 1000, 2000, ...) and its last-rung score is the mean over
its trainings: ``fsd bench ranking`` measured one genotype's validation moving by about 5 FROC
points with its training seed, more than the finalists' usual differences. With
``search.halving_data: train_val`` the candidates train on the whole train split and are scored on
the val split instead (``fsd train``'s data): the genotype is then chosen on validation exactly as
the best of stand-alone trainings would be.

Each candidate trains in ``<root>/<architecture hash>/`` (its further training seeds in
``<root>/<architecture hash>-seed<k>/``) and its rung scores are the validation
records of its log, so a killed selection resumes every candidate from its last checkpoint and
trains nothing twice; a candidate whose training diverges scores 0 (``failed.json``). The
settings the candidates train with are kept in ``<root>/settings.json``: a resume with other
settings is refused.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from fsd.artifacts import load_checkpoint
from fsd.config import FsdConfig
from fsd.data.deeplesion import DeepLesionDataset
from fsd.engine.loop import TrainingError
from fsd.engine.trainer import train
from fsd.errors import FsdError
from fsd.models import architecture_record
from fsd.progress import progress_bar
from search.candidate_runs import settings_key, validation_at
from search.selection import Candidate

FAILED_FILE = "failed.json"
SETTINGS_FILE = "settings.json"
#: a candidate's further training seeds are the search's seed plus multiples of this
FURTHER_SEED_STEP = 1000


def rung_config(config: FsdConfig, rungs: Sequence[int]) -> FsdConfig:
    """The ``train`` recipe, validated at every rung (every gcd of the rungs' epochs)."""
    recipe = config.train.model_copy(update={"eval_every_epochs": math.gcd(*rungs)})
    return config.model_copy(update={"train": recipe, "name": f"{config.name}-halving"})


class HalvingSelection:
    """Successive halving over candidates (see the module docstring)."""

    def __init__(
        self,
        config: FsdConfig,
        weight_set: DeepLesionDataset,
        arch_set: DeepLesionDataset,
        root: Path,
        device: torch.device,
        progress: bool = False,
    ) -> None:
        self.rungs = tuple(config.search.halving_rungs)
        self.config = rung_config(config, self.rungs)
        self.datasets = (weight_set, arch_set)
        self.root = Path(root)
        self.device = device
        self.progress = progress
        self.settings = settings_key(self.config)
        self.final_seeds = config.search.halving_final_seeds
        #: each last-rung candidate's score with each of its training seeds (halving_final_seeds > 1)
        self.final_seed_scores: dict[tuple[int, ...], list[float]] = {}

    def check_settings(self) -> None:
        """Refuse candidates trained with other settings; record these for a later resume."""
        path = self.root / SETTINGS_FILE
        if path.is_file() and json.loads(path.read_text()).get("settings") != self.settings:
            raise FsdError(f"{self.root} holds candidates trained with other settings; use another --out")
        self.root.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"settings": self.settings}) + "\n")

    def run_folder(self, candidate: Candidate, seed_index: int = 0) -> Path:
        """Where the candidate trains with its ``seed_index``-th training seed."""
        key = candidate.genotype.key
        return self.root / (key if seed_index == 0 else f"{key}-seed{seed_index}")

    def seeded_config(self, seed_index: int) -> FsdConfig:
        """The recipe with the ``seed_index``-th training seed (0: the search's own seed)."""
        return self.config if seed_index == 0 else self.config.model_copy(update={"seed": self.config.seed + FURTHER_SEED_STEP * seed_index})

    def score_at(self, candidate: Candidate, epoch: int, seed_index: int = 0) -> float:
        """The candidate's architecture-set FROC mean after ``epoch`` epochs of the recipe with its
        ``seed_index``-th training seed (training it there first, from its last checkpoint)."""
        run = self.run_folder(candidate, seed_index)
        if (run / FAILED_FILE).is_file():
            return 0.0
        score = validation_at(run, epoch)
        if score is not None:
            return score
        if (run / "last.pt").is_file() and load_checkpoint(run / "last.pt", kind="train").position.epoch >= epoch:
            shutil.rmtree(run)  # killed while validating that rung: its validation is lost, train again
        try:
            train(
                self.seeded_config(seed_index),
                architecture_record(genotype=candidate.genotype),
                run,
                resume=(run / "last.pt").is_file(),
                device=str(self.device),
                progress=False,
                datasets=self.datasets,
                stop_at_epoch=epoch,
            )
        except TrainingError as error:
            (run / FAILED_FILE).write_text(json.dumps({"failed": str(error), "epoch": epoch}) + "\n")
            return 0.0
        score = validation_at(run, epoch)
        if score is None:
            raise FsdError(f"{run}: no validation at epoch {epoch} (train.eval_every_epochs must divide every rung)")
        return score

    def rung_score(self, candidate: Candidate, rung: int, last: bool) -> float:
        """The candidate's score at ``rung``: one training's, or at the last rung the mean over
        its ``halving_final_seeds`` trainings (kept in :attr:`final_seed_scores`)."""
        if not last or self.final_seeds == 1:
            return self.score_at(candidate, rung)
        values = [self.score_at(candidate, rung, index) for index in range(self.final_seeds)]
        self.final_seed_scores[candidate.choices] = values
        return sum(values) / len(values)

    def run(self, candidates: Sequence[Candidate]) -> tuple[Candidate, dict[tuple[int, ...], dict[int, float]]]:
        """The chosen candidate and every candidate's score at every rung it reached."""
        self.check_settings()
        scores: dict[tuple[int, ...], dict[int, float]] = {c.choices: {} for c in candidates}
        alive = list(candidates)
        trainings = [math.ceil(len(alive) / 2**k) for k in range(len(self.rungs))]
        trainings[-1] *= self.final_seeds
        bar = progress_bar(total=sum(trainings), desc="successive halving", disable=not self.progress)
        try:
            for index, rung in enumerate(self.rungs):
                last = index == len(self.rungs) - 1
                for candidate in alive:
                    scores[candidate.choices][rung] = self.rung_score(candidate, rung, last)
                    bar.update(self.final_seeds if last else 1)
                alive.sort(key=lambda c: (-scores[c.choices][rung], c.parameters))
                if not last:
                    alive = alive[: math.ceil(len(alive) / 2)]
        finally:
            bar.close()
        return alive[0], scores


def rung_records(
    candidates: Sequence[Candidate],
    scores: dict[tuple[int, ...], dict[int, float]],
    chosen: Candidate,
    final_seed_scores: dict[tuple[int, ...], list[float]],
) -> list[dict[str, Any]]:
    """One record per candidate: its architecture, parameters, score at every rung it reached
    (and at the last rung, with each training seed when there were several)."""
    records = []
    for candidate in candidates:
        record: dict[str, Any] = {
            "key": candidate.genotype.key,
            "parameters": candidate.parameters,
            "rung_scores": {str(epoch): value for epoch, value in scores[candidate.choices].items()},
            "chosen": candidate.choices == chosen.choices,
            "backbone": candidate.genotype.backbone_ops,
            "head": [edge.op for edge in candidate.genotype.head_edges],
        }
        if candidate.choices in final_seed_scores:
            record["final_seed_scores"] = final_seed_scores[candidate.choices]
        records.append(record)
    return records


def log_rungs(path: Path, records: Sequence[dict[str, Any]]) -> None:
    """The selection's log: one JSON line per candidate (see :func:`rung_records`)."""
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
