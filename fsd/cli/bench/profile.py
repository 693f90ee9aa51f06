"""Where an eval-mode forward pass of the detector spends its time, stage by stage.

Forward hooks time every stage of the eager network (with a device synchronisation at each
boundary, so on a GPU the numbers include the launch gaps a stage causes):

- transform: normalisation, padding and the body boxes;
- backbone convolutions, neck: their time without the normalization layers inside them;
- normalization statistics: every normalization layer, wherever it sits;
- RPN and its post-processing (head convolutions, anchors, decoding, NMS);
- RoI align; RoI head and graph (the box head cell and the predictor, normalization excluded);
- final post-processing: the rest of the RoI heads (box decoding, scores, NMS, top-k).

The stages add up to the measured total; what no stage covers is reported as "other".
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from fsd.nn import is_norm_layer

STAGES = (
    "transform",
    "backbone convolutions",
    "normalization statistics",
    "neck",
    "RPN + post-processing",
    "RoI align",
    "RoI head + graph",
    "final post-processing",
    "other",
)


class StageTimer:
    """Accumulates wall time per named module (outermost entries only per module)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)
        self._started: dict[int, float] = {}
        self._handles: list[Any] = []

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def watch(self, name: str, module: nn.Module) -> None:
        def before(mod: nn.Module, args: Any) -> None:
            self._sync()
            self._started[id(mod)] = time.perf_counter()

        def after(mod: nn.Module, args: Any, output: Any) -> None:
            self._sync()
            self.seconds[name] += time.perf_counter() - self._started.pop(id(mod))

        self._handles += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


#: the parts whose normalization layers are timed apart from them
NORM_GROUPS = ("backbone", "neck", "rpn", "box_head", "predictor")


def detector_parts(model: nn.Module) -> dict[str, nn.Module]:
    """The detector's modules the stages are measured from, by name."""
    return {
        "transform": model.transform,
        "backbone": model.backbone,
        "neck": model.neck,
        "rpn": model.rpn,
        "roi_heads": model.roi_heads,
        "roi_align": model.roi_heads.box_roi_pool,
        "box_head": model.roi_heads.box_head,
        "predictor": model.roi_heads.box_predictor,
        "slice_position": model.roi_heads.slice_position,
    }


def watch_stages(timer: StageTimer, parts: Mapping[str, nn.Module]) -> None:
    """Time every part, and the normalization layers of :data:`NORM_GROUPS` as ``norm:<part>``."""
    for name, module in parts.items():
        timer.watch(name, module)
    for name in NORM_GROUPS:
        for norm in (m for m in parts[name].modules() if is_norm_layer(m)):
            timer.watch(f"norm:{name}", norm)


def split_stages(seconds: Mapping[str, float]) -> dict[str, float]:
    """Seconds per stage (every one of :data:`STAGES` but "other") from the per-part seconds that
    :func:`watch_stages` collects: normalization is taken out of the parts it runs in."""
    s = defaultdict(float, seconds)
    return {
        "transform": s["transform"],
        "backbone convolutions": s["backbone"] - s["norm:backbone"],
        "normalization statistics": sum(s[f"norm:{name}"] for name in NORM_GROUPS),
        "neck": s["neck"] - s["norm:neck"],
        "RPN + post-processing": s["rpn"] - s["norm:rpn"],
        "RoI align": s["roi_align"],
        "RoI head + graph": s["box_head"] + s["predictor"] + s["slice_position"] - s["norm:box_head"] - s["norm:predictor"],
        "final post-processing": s["roi_heads"] - s["roi_align"] - s["box_head"] - s["predictor"] - s["slice_position"],
    }


def stage_profile(model: nn.Module, call: Callable[[], Any], device: torch.device, warmup: int, repeats: int, batch: int) -> dict[str, float]:
    """Milliseconds per image spent in each stage (:data:`STAGES`) and ``"total"``, averaged over
    ``repeats`` calls of ``call`` (a forward pass of ``batch`` images through ``model``)."""
    for _ in range(warmup):
        call()
    parts = detector_parts(model)
    timer = StageTimer(device)
    watch_stages(timer, parts)
    total = 0.0
    try:
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            call()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            total += time.perf_counter() - started
    finally:
        timer.close()
    stages = split_stages(timer.seconds)
    stages["other"] = max(total - sum(stages.values()), 0.0)
    per_image = 1000.0 / (repeats * batch)
    result = {name: round(value * per_image, 3) for name, value in stages.items()}
    result["total"] = round(total * per_image, 3)
    return result


def stage_table(rows: Mapping[str, Mapping[str, float]], stages: Sequence[str], digits: int = 2, labels: Mapping[str, str] | None = None) -> str:
    """A table: one column per profiled configuration, one row per stage (ms and % of the total),
    stage names shown through ``labels`` where given."""
    names = list(rows)
    labels = labels or {}
    lines = ["| stage | " + " | ".join(names) + " |", "|" + " --- |" * (len(names) + 1)]
    for stage in (*stages, "total"):
        cells = []
        for name in names:
            value, total = rows[name].get(stage, 0.0), rows[name]["total"]
            cells.append(f"{value:.{digits}f} ms" if stage == "total" else f"{value:.{digits}f} ms ({100 * value / max(total, 1e-9):.0f}%)")
        lines.append(f"| {labels.get(stage, stage)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def profile_markdown(rows: Mapping[str, Mapping[str, float]]) -> str:
    """The inference profile's table (ms per image)."""
    return stage_table(rows, STAGES)
