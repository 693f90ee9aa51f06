"""`fsd bench accuracy`: the searched FSD network against general-purpose and ablated detectors.

On one data set with a held-out test split, every arm trains from scratch with the same schedule
(the config's ``train`` section) and is evaluated on the test split:

- ``fsd``: the searched genotype with the config's normalizer (SN);
- ``resnet50_fpn`` / ``resnet18_fpn``: general-purpose Faster R-CNN baselines (BN, the usual
  general-purpose choice);
- ``fsd_bn`` / ``fsd_gn``: the searched network with BN or GN instead of SN at the same
  images per GPU;
- ``random``: a random architecture from the same search space;
- ``types_graph_off`` / ``types_graph_on``: the multi-type task with the region-aware graph
  module off and on.

The search runs once (binary task) and its time is reported. Each arm's directory keeps its
checkpoints and report, so an interrupted benchmark resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fsd.cli.data_setup import ensure_data
from fsd.config import FsdConfig
from fsd.engine.evaluation import evaluate_model
from fsd.engine.trainer import train
from fsd.errors import FsdError
from fsd.models import DetectorConfig, architecture_record, build_from_architecture, load_genotype
from fsd.models.complexity import count_parameters, forward_flops

ARMS: tuple[str, ...] = ("fsd", "resnet50_fpn", "resnet18_fpn", "fsd_bn", "fsd_gn", "random", "types_graph_off", "types_graph_on")
ARM_TITLES: dict[str, str] = {
    "fsd": "FSD (searched, SN)",
    "resnet50_fpn": "Faster R-CNN R50-FPN",
    "resnet18_fpn": "Faster R-CNN R18-FPN",
    "fsd_bn": "FSD with BN",
    "fsd_gn": "FSD with GN",
    "random": "random architecture",
    "types_graph_off": "FSD multi-type, graph off",
    "types_graph_on": "FSD multi-type, graph on",
}


@dataclass
class ArmResult:
    arm: str
    report: dict[str, Any]
    parameters: int
    gflops: float
    train_seconds: float


def arm_setup(arm: str, config: FsdConfig, genotype_path: Path) -> tuple[FsdConfig, dict[str, Any]]:
    """The config and architecture record of one arm."""
    if arm not in ARMS:
        raise FsdError(f"unknown benchmark arm {arm!r}; choose from {', '.join(ARMS)}")
    from search.loop import random_genotype

    searched = architecture_record(genotype=load_genotype(genotype_path))
    updates: dict[str, Any] = {}
    architecture = searched
    model = config.model
    if arm in ("resnet50_fpn", "resnet18_fpn"):
        architecture = architecture_record(baseline=arm)
        updates["model"] = model.model_copy(update={"norm": "bn", "graph": model.graph.model_copy(update={"enabled": False})})
    elif arm in ("fsd_bn", "fsd_gn"):
        updates["model"] = model.model_copy(update={"norm": arm[-2:], "graph": model.graph.model_copy(update={"enabled": False})})
    elif arm == "random":
        architecture = architecture_record(genotype=random_genotype(config, config.seed + 101))
        updates["model"] = model.model_copy(update={"graph": model.graph.model_copy(update={"enabled": False})})
    elif arm.startswith("types_graph"):
        updates["task"] = "types"
        updates["model"] = model.model_copy(update={"graph": model.graph.model_copy(update={"enabled": arm.endswith("_on")})})
    else:
        updates["model"] = model.model_copy(update={"graph": model.graph.model_copy(update={"enabled": False})})
    return config.model_copy(update=updates), architecture


def run_arm(arm: str, config: FsdConfig, genotype_path: Path, out_dir: Path, device: str, progress: bool) -> ArmResult:
    arm_config, architecture = arm_setup(arm, config, genotype_path)
    arm_dir = out_dir / arm
    result_file = arm_dir / "bench_result.json"
    if result_file.is_file():
        saved = json.loads(result_file.read_text())
        return ArmResult(arm, saved["report"], saved["parameters"], saved["gflops"], saved["train_seconds"])
    started = time.perf_counter()
    resume = (arm_dir / "last.pt").is_file()
    trained = train(arm_config, architecture, arm_dir, resume=resume, device=device, progress=progress)
    seconds = time.perf_counter() - started
    checkpoint = trained.best_checkpoint or trained.last_checkpoint
    report = evaluate_model(checkpoint, arm_config.data.root, split="test", out_dir=arm_dir, device=device,
                            batch_size=arm_config.eval.batch_size, fps=arm_config.eval.fps, iou=arm_config.eval.iou, progress=progress)
    model = build_from_architecture(architecture, DetectorConfig.from_config(arm_config))
    size = arm_config.preprocess.max_size
    result = ArmResult(arm, report, count_parameters(model), forward_flops(model, arm_config.preprocess.num_slices, size, size) / 1e9, seconds)
    result_file.write_text(json.dumps({"report": report, "parameters": result.parameters, "gflops": result.gflops, "train_seconds": seconds}, indent=2) + "\n")
    return result


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def results_markdown(results: Sequence[ArmResult], search_seconds: float, device: str) -> str:
    fps = ("0.5", "1", "2", "4", "8", "16")
    header = "| arm | " + " | ".join(f"sens@{fp}" for fp in fps) + " | mean 0.5-4 | AP | AP50 | per-type mAP | params (M) | GFLOPs | train time |"
    lines = [header, "|" + " --- |" * (len(fps) + 9)]
    for result in results:
        report = result.report
        froc = report["froc"]
        minutes = result.train_seconds / 60
        lines.append(
            f"| {ARM_TITLES[result.arm]} | " + " | ".join(_pct(froc.get(fp)) for fp in fps)
            + f" | {_pct(report['froc_mean_0.5_4'])} | {_pct(report['AP'])} | {_pct(report['AP50'])} | "
            + f"{_pct(report.get('mAP_types')) if result.arm.startswith('types') else '-'} | "
            + f"{result.parameters / 1e6:.2f} | {result.gflops:.1f} | {minutes:.1f} min |"
        )
    lines.append("")
    lines.append(f"Search time (once, binary task): {search_seconds / 60:.1f} min on {device}. Sensitivities and AP in %.")
    return "\n".join(lines)


def run_accuracy_benchmark(config: FsdConfig, out_dir: str | Path, arms: Sequence[str] = ARMS, device: str = "auto", progress: bool = True) -> str:
    """Search once, train and evaluate every arm, and return (and write) the markdown table."""
    from search.loop import search

    out_dir = Path(out_dir)
    ensure_data(config, device, progress)
    search_dir = out_dir / "search"
    genotype_path = search_dir / "genotype.json"
    if genotype_path.is_file():
        search_seconds = float(json.loads((search_dir / "search_summary.json").read_text())["seconds"])
    else:
        resume = (search_dir / "search_last.pt").is_file()
        search_seconds = search(config.model_copy(update={"task": "binary"}), search_dir, resume=resume, device=device, progress=progress).seconds
    results = [run_arm(arm, config, genotype_path, out_dir, device, progress) for arm in arms]
    device_name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    table = results_markdown(results, search_seconds, device_name)
    (out_dir / "accuracy.md").write_text(table + "\n")
    (out_dir / "accuracy.json").write_text(
        json.dumps({r.arm: {"report": r.report, "parameters": r.parameters, "gflops": r.gflops, "train_seconds": r.train_seconds} for r in results}, indent=2) + "\n"
    )
    return table
