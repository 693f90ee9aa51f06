"""`fsd export`: a TorchScript model and its model card, verified against the eager model.

Writes ``model.ts`` (``torch.jit.script`` of the eval-mode detector) and ``model.json`` (the
model card, :mod:`fsd.artifacts.model_card`). Before writing the card it reloads ``model.ts``
and checks that it reproduces the eager detections on sample inputs; a mismatch raises
:class:`ExportError` and leaves no model card, so a half-valid export is never mistaken for a
good one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fsd.artifacts import (
    TrainingRecord,
    Verification,
    load_checkpoint,
    network_from_checkpoint,
    new_model_card,
    torchscript,
    training_record,
    write_model_card,
)
from fsd.artifacts.loading import CARD_FILE, MODEL_FILE
from fsd.errors import FsdError
from fsd.models import DetectorConfig
from fsd.models.complexity import count_parameters
from fsd.preprocess import PreprocessConfig


class ExportError(FsdError):
    code = "export_failed"


@dataclass
class ExportResult:
    model_path: Path
    card_path: Path
    max_abs_difference: float


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
) -> ExportResult:
    """Script, verify (as the checkpoint's ``export`` config section says) and write ``model.ts`` +
    ``model.json`` from a training checkpoint."""
    checkpoint = Path(checkpoint)
    state = load_checkpoint(checkpoint, kind="train")
    report_path = Path(report) if report else checkpoint.parent / "report.json"
    metrics: dict[str, Any] = json.loads(report_path.read_text()) if report_path.is_file() else {}
    return export_module(
        network_from_checkpoint(state),
        out_dir,
        architecture=state.architecture,
        detector_config=state.detector_config,
        preprocess=state.preprocess,
        task=state.task,
        name=name or state.config.name,
        version=version,
        metrics=metrics,
        training=training_record(state, checkpoint),
        verify_samples=state.config.export.verify_samples,
        atol=state.config.export.atol,
    )


def export_module(
    model: torch.nn.Module,
    out_dir: str | Path,
    *,
    architecture: dict[str, Any],
    detector_config: DetectorConfig,
    preprocess: PreprocessConfig,
    task: str,
    name: str,
    version: str,
    metrics: dict[str, Any] | None = None,
    training: TrainingRecord | None = None,
    verify_samples: int = 4,
    atol: float = 1e-4,
) -> ExportResult:
    """Script an eval-mode detector, verify the saved file against it, and write the model card."""
    out_dir = Path(out_dir)
    model = model.eval()
    scripted = torchscript.script(model)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / MODEL_FILE
    card_path = out_dir / CARD_FILE
    card_path.unlink(missing_ok=True)
    torchscript.save(scripted, model_path)
    reloaded = torchscript.load(model_path)
    worst = verify_scripted(model, reloaded, sample_inputs(preprocess, verify_samples), atol)
    card = new_model_card(
        name=name,
        version=version,
        task=task,
        architecture=architecture,
        detector_config=detector_config,
        preprocess=preprocess,
        parameters=count_parameters(model),
        metrics=metrics,
        training=training,
        verification=Verification(samples=verify_samples, max_abs_difference=worst, atol=atol),
    )
    write_model_card(card, card_path)
    return ExportResult(model_path=model_path, card_path=card_path, max_abs_difference=worst)
