"""Plots of a run's metrics log: loss terms over iterations and validation metrics over epochs."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from fsd.engine.metrics_log import read_log


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if values.size < window or window <= 1:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def plot_training(log_path: str | Path, out_png: str | Path, title: str = "training") -> Path:
    """Loss terms (smoothed) and validation metrics from a metrics.jsonl."""
    records = read_log(log_path)
    train = [r for r in records if r.get("type") == "train"]
    val = [r for r in records if r.get("type") == "val"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    if train:
        iterations = np.array([r["iteration"] for r in train])
        names = sorted({k for r in train for k in r if k.startswith("loss")})
        window = max(1, len(train) // 50)
        for name in names:
            values = np.array([r.get(name) if r.get(name) is not None else np.nan for r in train], dtype=float)
            smoothed = _smooth(values, window)
            axes[0].plot(iterations[len(iterations) - len(smoothed) :], smoothed, label=name, linewidth=1.2)
        axes[0].set_yscale("log")
        axes[0].legend(fontsize=8)
    axes[0].set_xlabel("iteration")
    axes[0].set_title(f"{title}: losses (moving average)")
    if val:
        epochs = [r["epoch"] for r in val]
        for key in ("froc_mean_0.5_4", "AP50", "AP", "mAP_types"):
            values = [r.get("metrics", {}).get(key) for r in val]
            if any(v is not None for v in values):
                axes[1].plot(epochs, [np.nan if v is None else v for v in values], marker="o", label=key)
        axes[1].set_ylim(0, 1)
        axes[1].legend(fontsize=8)
    axes[1].set_xlabel("epoch")
    axes[1].set_title("validation")
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png
