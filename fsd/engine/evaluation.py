"""`fsd evaluate`: DeepLesion FROC, COCO AP, per-type AP and per-size sensitivity of a model on a
split, written as ``report.json`` and ``froc.png``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fsd.artifacts import InferenceModel, load_for_inference
from fsd.config import FsdConfig
from fsd.constants import DEEPLESION_FP_RATES
from fsd.device import resolve_device
from fsd.engine.datasets import build_dataset
from fsd.engine.prediction import predict_dataset, score_predictions


def evaluation_config(model: InferenceModel, data_root: str | Path) -> FsdConfig:
    """The data settings a model was trained with (task, preprocessing, split), over ``data_root``."""
    split = model.split
    return FsdConfig.model_validate(
        {
            "task": model.task,
            "preprocess": model.preprocess,
            "data": {
                "root": Path(data_root),
                "drop_noisy": split.drop_noisy,
                "type_split": split.type_split,
                "split_seed": split.split_seed,
                "cache": False,
            },
        }
    )


def evaluate_model(
    model_path: str | Path,
    data_root: str | Path,
    split: str = "test",
    out_dir: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 4,
    fps: tuple[float, ...] = DEEPLESION_FP_RATES,
    iou: float = 0.5,
    progress: bool = True,
) -> dict[str, Any]:
    from fsd.eval import froc_curve, plot_froc

    model_path = Path(model_path)
    target_device = resolve_device(device)
    model = load_for_inference(model_path, target_device)
    dataset = build_dataset(evaluation_config(model, data_root), split)
    predictions = predict_dataset(model.module, dataset, target_device, batch_size, progress=progress)
    report = score_predictions(predictions, model.num_classes, fps, iou)
    report["split"] = split
    report["model"] = {"path": str(model_path), "name": model.name, "version": model.version, "task": model.task}
    out = Path(out_dir) if out_dir else (model_path.parent if model_path.is_file() else model_path)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    curve = froc_curve(predictions.froc_inputs(), predictions.gt_boxes, iou=iou)
    plot_froc({f"{model.name} ({split})": curve}, out / "froc.png", fps=fps)
    return report
