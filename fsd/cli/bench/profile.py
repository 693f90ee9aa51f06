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
from collections.abc import Callable
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


def _norms_within(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if is_norm_layer(m)]


def stage_profile(model: nn.Module, call: Callable[[], Any], device: torch.device, warmup: int, repeats: int, batch: int) -> dict[str, float]:
    """Milliseconds per image spent in each stage (:data:`STAGES`) and ``"total"``, averaged over
    ``repeats`` calls of ``call`` (a forward pass of ``batch`` images through ``model``)."""
    for _ in range(warmup):
        call()
    parts = {
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
    timer = StageTimer(device)
    for name, module in parts.items():
        timer.watch(name, module)
    norm_groups = {name: _norms_within(parts[name]) for name in ("backbone", "neck", "rpn", "box_head", "predictor")}
    for name, norms in norm_groups.items():
        for norm in norms:
            timer.watch(f"norm:{name}", norm)
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
    s = timer.seconds
    norm_total = sum(s[f"norm:{name}"] for name in norm_groups)
    stages = {
        "transform": s["transform"],
        "backbone convolutions": s["backbone"] - s["norm:backbone"],
        "normalization statistics": norm_total,
        "neck": s["neck"] - s["norm:neck"],
        "RPN + post-processing": s["rpn"] - s["norm:rpn"],
        "RoI align": s["roi_align"],
        "RoI head + graph": s["box_head"] + s["predictor"] + s["slice_position"] - s["norm:box_head"] - s["norm:predictor"],
        "final post-processing": s["roi_heads"] - s["roi_align"] - s["box_head"] - s["predictor"] - s["slice_position"],
    }
    stages["other"] = max(total - sum(stages.values()), 0.0)
    per_image = 1000.0 / (repeats * batch)
    result = {name: round(value * per_image, 3) for name, value in stages.items()}
    result["total"] = round(total * per_image, 3)
    return result


def profile_markdown(rows: dict[str, dict[str, float]]) -> str:
    """A table: one column per profiled configuration, one row per stage (ms per image and %)."""
    names = list(rows)
    lines = ["| stage | " + " | ".join(names) + " |", "|" + " --- |" * (len(names) + 1)]
    for stage in (*STAGES, "total"):
        cells = []
        for name in names:
            value, total = rows[name].get(stage, 0.0), rows[name]["total"]
            cells.append(f"{value:.2f} ms" if stage == "total" else f"{value:.2f} ms ({100 * value / max(total, 1e-9):.0f}%)")
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
