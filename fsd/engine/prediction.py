"""Running a detector over a whole data set, and scoring the result with the DeepLesion metric."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from fsd.data.deeplesion import DeepLesionDataset
from fsd.progress import progress_bar


@dataclass
class DatasetPredictions:
    """Per image: detections (boxes, scores, labels, type_scores), the predicted slice position
    (NaN for a model without the slice-position head) and the ground truth."""

    boxes: list[np.ndarray]
    scores: list[np.ndarray]
    labels: list[np.ndarray]
    type_scores: list[np.ndarray]
    slice_positions: list[float]
    gt_boxes: list[np.ndarray]
    gt_labels: list[np.ndarray]
    gt_sizes_mm: list[np.ndarray]
    gt_slice_positions: list[float]

    def slice_position_error(self) -> float | None:
        """Mean absolute error of the predicted slice position (None without predictions)."""
        pairs = [(p, t) for p, t in zip(self.slice_positions, self.gt_slice_positions) if np.isfinite(p) and np.isfinite(t)]
        return float(np.mean([abs(p - t) for p, t in pairs])) if pairs else None

    def froc_inputs(self) -> list[np.ndarray]:
        return [np.concatenate([b, s[:, None]], axis=1) for b, s in zip(self.boxes, self.scores)]


@torch.no_grad()
def predict_dataset(
    model: nn.Module,
    dataset: DeepLesionDataset,
    device: torch.device,
    batch_size: int = 4,
    amp: bool = False,
    progress: bool = True,
) -> DatasetPredictions:
    """Eval-mode detections for every item of ``dataset`` (works for eager and TorchScript models)."""
    was_training = model.training
    model.eval()
    result = DatasetPredictions([], [], [], [], [], [], [], [], [])
    indices = list(range(len(dataset)))
    batches = [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
    use_amp = amp and device.type == "cuda"
    for batch in progress_bar(batches, desc=f"predict {dataset.name}", disable=not progress, leave=False):
        items = [dataset[i] for i in batch]
        images = [image.to(device, non_blocking=True) for image, _ in items]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            _, detections = model(images)
        for (_, target), detection in zip(items, detections):
            result.boxes.append(detection["boxes"].float().cpu().numpy().reshape(-1, 4))
            result.scores.append(detection["scores"].float().cpu().numpy().reshape(-1))
            result.labels.append(detection["labels"].cpu().numpy().reshape(-1))
            result.type_scores.append(detection["type_scores"].float().cpu().numpy().reshape(len(result.scores[-1]), -1))
            position = detection.get("slice_position")
            result.slice_positions.append(float(position.reshape(-1)[0]) if position is not None else float("nan"))
            truth = target.get("slice_z")
            result.gt_slice_positions.append(float(truth.reshape(-1)[0]) if truth is not None else float("nan"))
            result.gt_boxes.append(target["boxes"].numpy().reshape(-1, 4))
            result.gt_labels.append(target["labels"].numpy().reshape(-1))
            result.gt_sizes_mm.append(target["sizes_mm"].numpy().reshape(-1))
    model.train(was_training)
    return result


def score_predictions(predictions: DatasetPredictions, num_classes: int, fps: tuple[float, ...], iou: float) -> dict[str, Any]:
    """The evaluation report (FROC, its mean over 0.5-4 FPs, AP/AP50/AP75, the type metrics,
    per-size sensitivity) of :func:`fsd.eval.evaluate_detections`, plus ``slice_position_mae``:
    the mean absolute error of the predicted slice position (None for a model without one)."""
    from fsd.eval import evaluate_detections

    report = evaluate_detections(
        predictions.froc_inputs(),
        predictions.gt_boxes,
        labels=predictions.gt_labels,
        type_scores=predictions.type_scores,
        sizes_mm=predictions.gt_sizes_mm,
        num_classes=num_classes,
        fps=fps,
        iou=iou,
    )
    report["slice_position_mae"] = predictions.slice_position_error()
    return report
