"""Plot of how the architecture weights evolved: one panel per searchable position, then the
normalised entropy of every position and the margin of the op each would derive, per epoch."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from fsd.config import SpaceSection
from fsd.engine.metrics_log import read_log
from fsd.models.genotype import head_edge_pairs


def plot_alphas(alphas_jsonl: str | Path, space: SpaceSection, out_png: str | Path) -> Path:
    records = read_log(alphas_jsonl)
    epochs = [r["epoch"] for r in records]
    panels: list[tuple[str, list[str], list[list[float]]]] = []
    block_names = [f"stage {s + 1} block {b + 1}" for s, stage in enumerate(space.stages) for b in range(stage.blocks)]
    for position, name in enumerate(block_names):
        series = [r["backbone"][position] for r in records] if records else []
        panels.append((f"backbone {name}", list(space.backbone_ops), series))
    for position, (source, target) in enumerate(head_edge_pairs(space.head_nodes)):
        series = [r["head"][position] for r in records] if records else []
        panels.append((f"head edge {source}->{target}", list(space.head_ops), series))
    columns = 4
    rows = math.ceil((len(panels) + 2) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.0 * rows), squeeze=False)
    cmap = plt.get_cmap("tab20")
    for axis, (title, names, series) in zip(axes.flat, panels):
        for index, op in enumerate(names):
            axis.plot(epochs, [weights[index] for weights in series], label=op, color=cmap(index % 20), linewidth=1.3)
        axis.set_title(title, fontsize=9)
        axis.set_xlabel("epoch", fontsize=8)
        axis.set_ylabel("softmax weight", fontsize=8)
        axis.tick_params(labelsize=7)
    position_names = [f"b{index + 1}" for index in range(len(block_names))] + [
        f"h{source}->{target}" for source, target in head_edge_pairs(space.head_nodes)
    ]
    flat = list(axes.flat)
    for axis, key, label in ((flat[len(panels)], "entropy", "entropy / log K"), (flat[len(panels) + 1], "margin", "chosen op's lead")):
        with_key = [r for r in records if key in r]
        for index, name in enumerate(position_names):
            part, offset = ("backbone", index) if index < len(block_names) else ("head", index - len(block_names))
            values = [r[key][part][offset] for r in with_key]
            axis.plot([r["epoch"] for r in with_key], values, color=cmap(index % 20), linewidth=1.0, label=name)
        axis.set_title(f"{key} per position", fontsize=9)
        axis.set_xlabel("epoch", fontsize=8)
        axis.set_ylabel(label, fontsize=8)
        axis.tick_params(labelsize=7)
        axis.legend(fontsize=6, ncol=2)
    for axis in flat[len(panels) + 2 :]:
        axis.axis("off")
    handles, labels = [], []
    for axis in (axes.flat[0], axes.flat[len(block_names)] if len(panels) > len(block_names) else axes.flat[0]):
        for handle, label in zip(*axis.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 7), fontsize=8)
    fig.suptitle("architecture weights over the search")
    fig.tight_layout(rect=(0, 0.07, 1, 0.97))
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png
