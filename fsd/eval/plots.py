"""FROC plot: sensitivity against average false positives per image (log scale), one line per model.

Drawn with matplotlib's Agg canvas directly (no pyplot state), so it is safe in servers and threads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

from fsd.constants import DEEPLESION_FP_RATES
from fsd.eval.froc import MEAN_FP_RATES
from fsd.eval.inputs import check_fp_rates


def curve_sensitivity_at(
    fp_per_image: np.ndarray, sensitivity: np.ndarray, rates: Sequence[float]
) -> np.ndarray:
    """Sensitivity of a :func:`~fsd.eval.froc.froc_curve` at each rate (0 for an empty curve)."""
    if len(fp_per_image) == 0:
        return np.zeros(len(rates))
    return np.interp(np.asarray(rates, dtype=np.float64), fp_per_image, sensitivity)


def plot_froc(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    out_png: str | Path,
    fps: Sequence[float] = DEEPLESION_FP_RATES,
    title: str = "FROC",
) -> Path:
    """Write a FROC plot of ``curves`` (name -> (fp_per_image, sensitivity)) to ``out_png``.

    The x axis is logarithmic from 0.125 to 16 FPs per image (widened to cover ``fps``), the y axis
    sensitivity from 0 to 1; each curve gets a marker at every rate of ``fps`` and, in the legend,
    its mean sensitivity at 0.5, 1, 2 and 4 FPs per image. Returns the written path.
    """
    rates = [rate for rate in check_fp_rates(fps) if rate > 0]
    x_min = min([0.125, *rates])
    x_max = max([16.0, *rates])
    figure = Figure(figsize=(6.4, 4.8))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for name, (fp_per_image, sensitivity) in curves.items():
        fp_per_image = np.asarray(fp_per_image, dtype=np.float64)
        sensitivity = np.asarray(sensitivity, dtype=np.float64)
        at_rates = curve_sensitivity_at(fp_per_image, sensitivity, rates)
        last = float(sensitivity[-1]) if len(sensitivity) else 0.0
        # the official curve holds its last sensitivity beyond the largest FP rate
        end_x = max(x_max, float(fp_per_image[-1])) if len(fp_per_image) else x_max
        line_x = np.concatenate([fp_per_image, [end_x]])
        line_y = np.concatenate([sensitivity, [last]])
        visible = line_x > 0
        mean = float(curve_sensitivity_at(fp_per_image, sensitivity, MEAN_FP_RATES).mean())
        label = f"{name} (mean at 0.5-4 FPs: {mean:.3f})"
        (line,) = axes.plot(line_x[visible], line_y[visible], linewidth=1.5, label=label)
        axes.plot(rates, at_rates, linestyle="none", marker="o", color=line.get_color(), clip_on=False)
    axes.set_xscale("log")
    axes.set_xlim(x_min, x_max)
    axes.set_ylim(0.0, 1.0)
    ticks = sorted({x_min, *rates, x_max})
    axes.xaxis.set_major_locator(FixedLocator(ticks))
    axes.xaxis.set_minor_locator(NullLocator())
    axes.set_xticklabels([f"{tick:g}" for tick in ticks])
    axes.set_xlabel("average false positives per image")
    axes.set_ylabel("sensitivity")
    axes.set_title(title)
    axes.grid(True, which="major", alpha=0.3)
    if curves:
        axes.legend(loc="lower right")
    out_path = Path(out_png)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_path, dpi=110)
    return out_path
