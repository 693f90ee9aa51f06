"""`fsd evaluate`: DeepLesion FROC, COCO AP, per-type AP and per-size sensitivity of a model on a
split, written as ``report.json`` and ``froc.png``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fsd.data.deeplesion import DeepLesionDataset
from fsd.engine.distributed import resolve_device
from fsd.engine.prediction import predict_dataset, score_predictions
from fsd.errors import DataError
from fsd.exported import load_for_inference

DEFAULT_FPS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


def evaluate_model(
    model_path: str | Path,
    data_root: str | Path,
    split: str = "test",
    out_dir: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 4,
    fps: tuple[float, ...] = DEFAULT_FPS,
    iou: float = 0.5,
    progress: bool = True,
) -> dict[str, Any]:
    from fsd.eval import froc_curve, plot_froc

    model_path = Path(model_path)
    target_device = resolve_device(device)
    model = load_for_inference(model_path, target_device)
    split_settings = {k: v for k, v in model.split.items() if v is not None}
    dataset = DeepLesionDataset(
        data_root,
        split=split,
        task=model.task,
        preprocess=model.preprocess,
        drop_noisy=bool(split_settings.get("drop_noisy", True)),
        type_split=tuple(split_settings.get("type_split", (0.7, 0.15, 0.15))),
        split_seed=int(split_settings.get("split_seed", 0)),
    )
    if len(dataset) == 0:
        raise DataError(f"{data_root}: split {split!r} of task {model.task!r} has no key slices with lesions")
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
