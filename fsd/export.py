"""`fsd export`: a TorchScript model and its model card, verified against the eager model.

Writes ``model.ts`` (``torch.jit.script`` of the eval-mode detector) and ``model.json`` (the
model card: format version, name/version, architecture and genotype, class names, preprocessing
parameters, input contract, evaluation metrics, training-data fingerprint, software versions,
creation time, research-use notice). Before writing the card it reloads ``model.ts`` and checks
that it reproduces the eager detections on sample inputs; a mismatch raises :class:`ExportError`
and leaves no model card, so a half-valid export is never mistaken for a good one.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision

import fsd
from fsd import torchscript
from fsd.constants import LESION_TYPES, RESEARCH_USE_ONLY
from fsd.engine.checkpoint import load_checkpoint
from fsd.errors import FsdError
from fsd.models import DetectorConfig, build_from_architecture
from fsd.preprocess import PreprocessConfig

MODEL_CARD_FORMAT = "fsd-model-card"
MODEL_CARD_VERSION = 1


class ExportError(FsdError):
    code = "export_failed"


@dataclass
class ExportResult:
    model_path: Path
    card_path: Path
    max_abs_difference: float


def class_names_for(task: str) -> list[str]:
    return list(LESION_TYPES) if task == "types" else ["lesion"]


def data_fingerprint(root: Path) -> dict[str, Any]:
    """sha256 of the annotation file and its size, so a model names the data it learned from."""
    csv = Path(root) / "DL_info.csv"
    if not csv.is_file():
        return {"root": str(root), "dl_info_sha256": None}
    digest = hashlib.sha256(csv.read_bytes()).hexdigest()
    rows = max(len(csv.read_text().splitlines()) - 1, 0)
    return {"root": str(root), "dl_info_sha256": digest, "lesion_rows": rows}


def load_checkpoint_model(checkpoint: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the eval-mode detector a training checkpoint holds."""
    state = load_checkpoint(checkpoint)
    detector_config = DetectorConfig.from_dict(state["detector_config"])
    model = build_from_architecture(state["architecture"], detector_config)
    model.load_state_dict(state["model"])
    model.eval()
    return model, state


def sample_inputs(preprocess: PreprocessConfig, count: int, seed: int = 0) -> list[list[torch.Tensor]]:
    """Deterministic CT-like inputs (a body ellipse with blobs and noise) in several sizes."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for index in range(count):
        height = 96 + 32 * (index % 3)
        width = 128 + 16 * (index % 2)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
        body = ((xs / 0.85) ** 2 + (ys / 0.7) ** 2) < 1
        hu = torch.where(body, torch.tensor(40.0), torch.tensor(-1000.0))
        for _ in range(3):
            cx, cy = (torch.rand(2, generator=generator) - 0.5).tolist()
            radius = 0.05 + 0.1 * float(torch.rand((), generator=generator))
            hu = torch.where((xs - cx) ** 2 + (ys - cy) ** 2 < radius**2, torch.tensor(-20.0), hu)
        hu = hu + 15.0 * torch.randn((height, width), generator=generator)
        low, high = preprocess.window_hu
        image = ((hu - low) / (high - low)).clamp(0, 1)
        batches.append([image.expand(preprocess.num_slices, height, width).contiguous()])
    return batches


def compare_detections(expected: list[dict[str, torch.Tensor]], actual: list[dict[str, torch.Tensor]]) -> float:
    """Largest absolute difference between two detection lists; inf when their shapes differ."""
    worst = 0.0
    for a, b in zip(expected, actual):
        for key in ("boxes", "scores", "labels", "type_scores"):
            if a[key].shape != b[key].shape:
                return float("inf")
            if a[key].numel():
                worst = max(worst, float((a[key].double() - b[key].double()).abs().max()))
    return worst


def verify_scripted(eager: torch.nn.Module, scripted: torch.jit.ScriptModule, inputs: list[list[torch.Tensor]], atol: float) -> float:
    worst = 0.0
    with torch.no_grad():
        for images in inputs:
            _, expected = eager(images)
            _, actual = scripted(images)
            worst = max(worst, compare_detections(expected, actual))
    if not worst <= atol:
        raise ExportError(
            f"the TorchScript model does not reproduce the eager detections (largest difference {worst:.3g} > {atol:g}); "
            f"nothing was exported"
        )
    return worst


def export_model(
    checkpoint: str | Path,
    out_dir: str | Path,
    report: str | Path | None = None,
    name: str | None = None,
    version: str = "0.1.0",
    verify_samples: int = 4,
    atol: float = 1e-4,
) -> ExportResult:
    """Script, verify and write ``model.ts`` + ``model.json`` from a training checkpoint."""
    checkpoint = Path(checkpoint)
    model, state = load_checkpoint_model(checkpoint)
    metrics: dict[str, Any] = {}
    report_path = Path(report) if report else checkpoint.parent / "report.json"
    if report_path.is_file():
        metrics = json.loads(report_path.read_text())
    config = state.get("config", {})
    training = {
        "checkpoint_sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
        "iterations": state.get("iteration"),
        "data": data_fingerprint(Path(config.get("data", {}).get("root", "."))),
        "seed": config.get("seed"),
        "split": {key: config.get("data", {}).get(key) for key in ("type_split", "split_seed", "drop_noisy")},
    }
    return export_module(
        model,
        out_dir,
        architecture=state["architecture"],
        detector_config=state["detector_config"],
        preprocess=PreprocessConfig.from_dict(state["preprocess"]),
        task=state["task"],
        name=name or config.get("name", "fsd"),
        version=version,
        metrics=metrics,
        training=training,
        verify_samples=verify_samples,
        atol=atol,
    )


def export_module(
    model: torch.nn.Module,
    out_dir: str | Path,
    *,
    architecture: dict[str, Any],
    detector_config: dict[str, Any],
    preprocess: PreprocessConfig,
    task: str,
    name: str,
    version: str,
    metrics: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    verify_samples: int = 4,
    atol: float = 1e-4,
) -> ExportResult:
    """Script an eval-mode detector, verify the saved file against it, and write the model card."""
    out_dir = Path(out_dir)
    model = model.eval()
    scripted = torchscript.script(model)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / "model.ts"
    card_path = out_dir / "model.json"
    card_path.unlink(missing_ok=True)
    torchscript.save(scripted, model_path)
    reloaded = torchscript.load(model_path)
    worst = verify_scripted(model, reloaded, sample_inputs(preprocess, verify_samples), atol)
    card = {
        "format": MODEL_CARD_FORMAT,
        "format_version": MODEL_CARD_VERSION,
        "name": name,
        "version": version,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "task": task,
        "class_names": class_names_for(task),
        "architecture": architecture,
        "detector_config": detector_config,
        "preprocess": preprocess.to_dict(),
        "input": {
            "channels": preprocess.num_slices,
            "pixel_spacing_mm": preprocess.spacing_mm,
            "max_size": preprocess.max_size,
            "value_range": [0.0, 1.0],
            "layout": "list of float32 (C, H, W) tensors",
        },
        "output": {
            "boxes": "(N, 4) x1, y1, x2, y2 in model-input pixels",
            "scores": "(N,) lesion probability",
            "labels": "(N,) type id 1..K",
            "type_scores": "(N, K) type probabilities given a lesion",
        },
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "metrics": metrics or {},
        "training": training or {},
        "verification": {"samples": verify_samples, "max_abs_difference": worst, "atol": atol},
        "software": {
            "fsd": fsd.__version__,
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "intended_use": RESEARCH_USE_ONLY,
    }
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return ExportResult(model_path=model_path, card_path=card_path, max_abs_difference=worst)
