"""`fsd bench accuracy`: the searched FSD network against random architectures, the hand-written
genotype, general-purpose detectors and ablations, with enough test lesions and seeds to rank them.

Every arm trains from scratch with the config's ``train`` section, once per seed, and is scored
on the val split (where choices are made) and on the test set (where they are only scored):
the config's ``bench.test_data``, a separate synthetic set whose every key slice counts, or
else the data set's own test split. Arms:

- ``fsd``: the genotype the search found with that seed (one search per seed), SN;
- ``random``: ``bench.random_genotypes`` architectures drawn from the same space under the same
  derivation guards, one seed each (their mean, and the best on val);
- ``default``: the hand-written default genotype;
- ``resnet18_fpn`` / ``resnet50_fpn``: general-purpose Faster R-CNN (BN, as usual for them);
  ``resnet18_fpn_gn`` / ``resnet50_fpn_gn``: the same with GN, which unlike BN is stable at 2
  images per step (the claim against the baselines is made against the best of them on val);
- ``fsd_bn`` / ``fsd_gn`` / ``fsd_ssn`` / ``fsd_iln``: the searched genotype with another
  normalizer at the same images per step;
- ``types_graph_off`` / ``types_graph_on``: the multi-type task, region-aware graph off and on
  (the same losses in both); ``types_graph_no_position``: graph on without region awareness
  (no body-relative position, no slice position); ``types_graph_attached``: graph on with the
  predicted slice position not detached before the classifier.

Resumable by arm and seed: each finished cell writes ``cells/<arm>-seed<k>.json`` (its
metrics, parameters, timing, config and command) and ``.npz`` (every test detection's
outcome, for the bootstrap) into the results directory, and a re-run skips finished cells, so a
table can be built over several sittings and the small result files committed. A finished cell
measured with other settings than the config's now (its data, model, recipe, test set, for a
searched arm its search, for the others its architecture) is refused with the keys that differ,
never mixed into the table. The table and
figures are then made by :mod:`fsd.cli.bench.accuracy_report`.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from fsd.artifacts import load_checkpoint, load_for_inference
from fsd.cli.bench.searches import run_search
from fsd.cli.data_setup import ensure_data, ensure_held_out
from fsd.config import FsdConfig, changed_keys
from fsd.data.deeplesion import DeepLesionDataset
from fsd.data.fingerprint import data_fingerprint
from fsd.device import resolve_device
from fsd.engine.datasets import build_dataset, held_out_dataset
from fsd.engine.loop import TrainingError
from fsd.engine.prediction import DatasetPredictions, predict_dataset, score_predictions
from fsd.engine.trainer import train
from fsd.errors import FsdError
from fsd.eval.outcomes import Outcomes
from fsd.models import (
    DetectorConfig,
    architecture_record,
    build_from_architecture,
    default_genotype,
)
from fsd.models.complexity import count_parameters, forward_flops
from search.loop import random_genotype

#: the random arm's genotype k is drawn with this seed plus k (so is the ranking's random-k)
RANDOM_SEED_BASE = 1000


@dataclass(frozen=True)
class Arm:
    name: str
    title: str
    #: "searched", "random", "default", or a baseline name
    architecture: str
    task: str = "binary"
    norm: str | None = None
    graph: bool = False
    #: graph arms: region awareness, and whether the slice position reaches the classifier detached
    position: bool = True
    detach_position: bool = True


ARMS: dict[str, Arm] = {
    arm.name: arm
    for arm in (
        Arm("fsd", "FSD, searched (SN)", "searched"),
        Arm("random", "random architectures (SN)", "random"),
        Arm("default", "hand-written default genotype (SN)", "default"),
        Arm("resnet18_fpn", "Faster R-CNN R18-FPN (BN)", "resnet18_fpn", norm="bn"),
        Arm("resnet50_fpn", "Faster R-CNN R50-FPN (BN)", "resnet50_fpn", norm="bn"),
        Arm("resnet18_fpn_gn", "Faster R-CNN R18-FPN (GN)", "resnet18_fpn", norm="gn"),
        Arm("resnet50_fpn_gn", "Faster R-CNN R50-FPN (GN)", "resnet50_fpn", norm="gn"),
        Arm("fsd_bn", "FSD searched, BN", "searched", norm="bn"),
        Arm("fsd_gn", "FSD searched, GN", "searched", norm="gn"),
        Arm("fsd_ssn", "FSD searched, sparse SN", "searched", norm="ssn"),
        Arm("fsd_iln", "FSD searched, ILN", "searched", norm="iln"),
        Arm("types_graph_off", "FSD multi-type, graph off", "searched", task="types", graph=False),
        Arm("types_graph_on", "FSD multi-type, graph on", "searched", task="types", graph=True),
        Arm("types_graph_no_position", "FSD multi-type, graph on without position", "searched", task="types", graph=True, position=False),
        Arm("types_graph_attached", "FSD multi-type, graph on, position not detached", "searched", task="types", graph=True, detach_position=False),
    )
}


def arm_seeds(arm: Arm, config: FsdConfig) -> list[int]:
    """The seeds an arm trains with (for ``random``, genotype k trains with seed k)."""
    bench = config.bench
    if arm.architecture == "random":
        return list(range(bench.random_genotypes))
    if arm.architecture == "resnet50_fpn":
        return list(bench.seeds[: bench.resnet50_seeds])
    return list(bench.seeds)


def cell_name(arm: str, seed: int) -> str:
    return f"{arm}-seed{seed}"


def cell_config(arm: Arm, config: FsdConfig, seed: int) -> FsdConfig:
    model = config.model
    graph = model.graph.model_copy(update={"enabled": arm.graph, "position": arm.position, "detach_position": arm.detach_position})
    updates = {"norm": arm.norm or model.norm, "graph": graph}
    return config.model_copy(update={"seed": seed, "task": arm.task, "model": model.model_copy(update=updates)})


def cell_architecture(arm: Arm, config: FsdConfig, seed: int, out: Path, results: Path, device: str, progress: bool) -> dict[str, Any]:
    if arm.architecture == "searched":
        return architecture_record(genotype=run_search(config, out, results, seed, device, progress))
    return fixed_architecture(arm, config, seed)


def fixed_architecture(arm: Arm, config: FsdConfig, seed: int) -> dict[str, Any]:
    """The architecture of an arm that does not search (random, default genotype, baseline)."""
    if arm.architecture == "random":
        return architecture_record(genotype=random_genotype(config, RANDOM_SEED_BASE + seed))
    if arm.architecture == "default":
        return architecture_record(genotype=default_genotype())
    return architecture_record(baseline=arm.architecture)


def test_dataset(config: FsdConfig) -> tuple[DeepLesionDataset, str]:
    """The data set the test scores come from, and how to describe it."""
    test = config.bench.test_data
    if test is None:
        return build_dataset(config, "test"), f"test split of {config.data.root}"
    ensure_held_out(test, "benchmark test set")
    return held_out_dataset(config, test, "bench test set", cache=False), f"every key slice of {test.root}"


def outcomes_of(predictions: DatasetPredictions, patients: list[int], num_classes: int, iou: float) -> Outcomes:
    return Outcomes.from_predictions(
        predictions.boxes, predictions.scores, predictions.type_scores, predictions.gt_boxes, predictions.gt_labels, patients, num_classes, iou
    )


@dataclass(frozen=True)
class ScoredRun:
    """A trained run scored on val (where choices are made) and on the test set (scores only)."""

    val: dict[str, Any]
    test: dict[str, Any]
    outcomes: Outcomes
    test_set: DeepLesionDataset
    test_description: str
    train_seconds: float
    #: the metrics-log record of the best periodic validation (empty when there was none)
    best_validation: dict[str, Any]


def train_and_score(config: FsdConfig, architecture: dict[str, Any], run: Path, device: str, progress: bool) -> ScoredRun:
    """Train ``architecture`` into ``run`` (resuming, or skipped when finished), then score its
    best checkpoint on val and on the test set (:func:`test_dataset`)."""
    if not (run / "summary.json").is_file():
        train(config, architecture, run, resume=(run / "last.pt").is_file(), device=device, progress=progress)
    train_seconds = load_checkpoint(run / "last.pt", kind="train").elapsed_s
    target = resolve_device(device)
    checkpoint = run / "best.pt" if (run / "best.pt").is_file() else run / "last.pt"
    model = load_for_inference(checkpoint, target)
    settings = config.eval
    val_set = build_dataset(config, "val")
    val = score_predictions(predict_dataset(model.module, val_set, target, settings.batch_size, progress=progress), config.num_classes, settings.fps, settings.iou)
    test_set, test_description = test_dataset(config)
    predictions = predict_dataset(model.module, test_set, target, settings.batch_size, progress=progress)
    test = score_predictions(predictions, config.num_classes, settings.fps, settings.iou)
    outcomes = outcomes_of(predictions, [r.patient for r in test_set.records], config.num_classes, settings.iou)
    validations = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"type": "val"' in line]
    best = max(validations, key=lambda r: r["metrics"].get("froc_mean_0.5_4") or -1.0) if validations else {}
    return ScoredRun(val, test, outcomes, test_set, test_description, train_seconds, best)


def device_name(device: str) -> str:
    """The GPU's name, or "CPU": what a result file says it ran on."""
    target = resolve_device(device)
    return torch.cuda.get_device_name(target) if target.type == "cuda" else "CPU"


def data_fingerprints(config: FsdConfig, test_root: Path) -> dict[str, Any]:
    """The fingerprints of the data a cell trained, chose and was scored on."""
    fingerprints = {"train": data_fingerprint(config.data.root), "test": data_fingerprint(test_root)}
    if config.data.val_data is not None:
        fingerprints["val"] = data_fingerprint(config.data.val_data.root)
    return fingerprints


def measured_settings(dumped: dict[str, Any], searched: bool) -> dict[str, Any]:
    """What a cell's result depends on beside its architecture: a dumped cell config without its
    name and the bench's bookkeeping (its test set stays), and for a searched arm its search."""
    settings = {k: v for k, v in dumped.items() if k not in ("name", "bench", "search")}
    settings["bench"] = {"test_data": dumped.get("bench", {}).get("test_data")}
    if searched:
        settings["search"] = dumped.get("search")
    return settings


def check_current(result_file: Path, arm: Arm, config: FsdConfig, seed: int) -> None:
    """Refuse a finished cell measured with other settings than ``config``'s (FsdError naming
    them): the table must not mix measurements of two configs."""
    record = json.loads(result_file.read_text())
    searched = arm.architecture == "searched"
    try:
        # through the config model, so settings added since the cell was measured take their defaults
        recorded = FsdConfig.model_validate(record.get("config", {})).model_dump(mode="json")
    except ValidationError:
        changed = ["settings since removed or renamed"]
    else:
        now = cell_config(arm, config, seed).model_dump(mode="json")
        changed = changed_keys(measured_settings(recorded, searched), measured_settings(now, searched))
    if not searched and record.get("architecture") != json.loads(json.dumps(fixed_architecture(arm, config, seed))):
        changed.append("architecture")
    if changed:
        raise FsdError(
            f"{result_file} was measured with other settings than the config's ({', '.join(changed)} differ); "
            "delete it and its .npz to measure it again, or use another --results"
        )


def run_cell(arm: Arm, config: FsdConfig, seed: int, out: Path, results: Path, device: str, progress: bool) -> Path:
    """Train, score and record one cell (skipped when its result file exists and was measured
    with the config's settings; FsdError when it was measured with others)."""
    name = cell_name(arm.name, seed)
    result_file = results / "cells" / f"{name}.json"
    if result_file.is_file():
        check_current(result_file, arm, config, seed)
        return result_file
    if result_file.with_suffix(".failed.json").is_file():
        return result_file.with_suffix(".failed.json")
    # every arm's architecture comes from the bench's own config: one search per seed serves them all
    architecture = cell_architecture(arm, config, seed, out, results, device, progress)
    config = cell_config(arm, config, seed)
    run = out / "runs" / name
    scored = train_and_score(config, architecture, run, device, progress)
    test_set, outcomes = scored.test_set, scored.outcomes
    network = build_from_architecture(architecture, DetectorConfig.from_config(config))
    size = config.preprocess.max_size
    best_validation = scored.best_validation
    record = {
        "arm": arm.name,
        "title": arm.title,
        "seed": seed,
        "task": config.task,
        "norm": config.model.norm,
        "graph": config.model.graph.enabled,
        "architecture": architecture,
        "parameters": count_parameters(network),
        "gflops": forward_flops(network, config.preprocess.num_slices, size, size) / 1e9,
        "train_seconds": round(scored.train_seconds, 1),
        "val": scored.val,
        "val_before_recalibration": best_validation.get("metrics_before_recalibration"),
        "norm_importance": best_validation.get("norm_importance"),
        "test": scored.test,
        "test_outcomes": outcomes.metrics(),
        "confusion_matrix": outcomes.confusion_matrix().tolist() if config.num_classes > 1 else None,
        "test_set": {"description": scored.test_description, "images": len(test_set), "lesions": int(outcomes.lesions.sum()), "patients": len(set(outcomes.patient.tolist()))},
        "data": data_fingerprints(config, test_set.root),
        "device": device_name(device),
        "command": shlex.join(sys.argv),
        "config": config.model_dump(mode="json"),
    }
    result_file.parent.mkdir(parents=True, exist_ok=True)
    outcomes.save(result_file.with_suffix(".npz"))
    result_file.write_text(json.dumps(record, indent=2) + "\n")
    return result_file


def cell_order(arms: list[str], config: FsdConfig) -> list[tuple[Arm, int]]:
    """Every (arm, seed) cell, seed by seed across the arms, so that a benchmark stopped early
    still has every arm at its first seeds."""
    seeds = {name: arm_seeds(ARMS[name], config) for name in arms}
    rounds = max(len(s) for s in seeds.values())
    return [(ARMS[name], seeds[name][i]) for i in range(rounds) for name in arms if i < len(seeds[name])]


def run_accuracy_benchmark(
    config: FsdConfig, out_dir: str | Path, results_dir: str | Path, arms: list[str], device: str = "auto", progress: bool = True
) -> list[Path]:
    """Run every missing cell of ``arms`` (each arm over its seeds, see :func:`cell_order`);
    returns the cells' result files. A cell whose training diverges is recorded as failed (with
    the reason) and the benchmark goes on."""
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise FsdError(f"unknown arm(s) {', '.join(unknown)}; choose from {', '.join(ARMS)}")
    out, results = Path(out_dir), Path(results_dir)
    ensure_data(config, device, progress)
    files = []
    for arm, seed in cell_order(arms, config):
        try:
            files.append(run_cell(arm, config, seed, out, results, device, progress))
        except TrainingError as error:
            failed = results / "cells" / f"{cell_name(arm.name, seed)}.failed.json"
            failed.parent.mkdir(parents=True, exist_ok=True)
            failed.write_text(json.dumps({"arm": arm.name, "seed": seed, "failed": str(error), "command": shlex.join(sys.argv)}, indent=2) + "\n")
            files.append(failed)
    return files
