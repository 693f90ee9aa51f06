"""The multi-type part of the accuracy benchmark's report: the type metric, recall by type, the
confusion matrices, and the claims the region-aware graph is held to.

The type metric (:meth:`fsd.eval.outcomes.Outcomes.type_metrics`): AP50 of every type with each
detection scored P(lesion) x P(type | lesion), their mean over the 8 types ("mAP50 types"), the
type accuracy of found lesions, and each type's recall among its found lesions. Paired
differences are against graph off (and, for the ablations, against graph on), with the bootstrap
over patients and seeds of :mod:`fsd.cli.bench.accuracy_report` and, beside it, a seed-level t
interval (:mod:`fsd.cli.bench.seed_level`; three seeds resampled understate the seed variance).
Cells written before every detection counted for every type carry the old argmax metric and are
labelled so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from fsd.cli.bench.percentile_interval import percentile_interval
from fsd.cli.bench.seed_level import seed_level_difference
from fsd.constants import LESION_TYPES

GRAPH_OFF = "types_graph_off"
GRAPH_ON = "types_graph_on"
#: arm -> the arm it is compared with
COMPARISONS: dict[str, str] = {
    GRAPH_ON: GRAPH_OFF,
    "types_graph_no_position": GRAPH_ON,
    "types_graph_attached": GRAPH_ON,
}
DIFFERENCE_METRICS = ("mAP50 types", "type accuracy", "sens@4", "AP50")
#: targets of the region-aware graph (issue: lesion types a radiologist can trust)
RELATIVE_GAIN = 0.10
TYPE_ACCURACY = 0.90
TYPE_RECALL = 0.70


class TypedCell(Protocol):
    record: dict[str, Any]
    outcomes: Any


def type_values(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The multi-type values of one scoring (see :meth:`Outcomes.type_metrics`), flat."""
    values = {"mAP50 types": metrics["mAP50_types"], "type accuracy": metrics["type_accuracy"]}
    values.update({f"recall {name}": value for name, value in metrics["type_recall"].items()})
    values.update({f"AP50 {name}": value for name, value in metrics["AP50_by_type"].items()})
    return values


def typing_differences(
    cells: Mapping[str, Sequence[TypedCell]],
    samples: Mapping[str, Mapping[str, np.ndarray]],
    point: Mapping[str, Mapping[str, Any]],
    values: Callable[[TypedCell], dict[str, float]],
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per compared arm: paired bootstrap and seed-level differences against its reference, and
    for graph on the relative mAP50 gain."""
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for arm, reference in COMPARISONS.items():
        if arm not in cells or reference not in cells:
            continue
        entry: dict[str, dict[str, Any]] = {}
        for metric in DIFFERENCE_METRICS:
            difference = samples[arm][metric] - samples[reference][metric]
            entry[metric] = {
                "mean": point[arm][metric]["mean"] - point[reference][metric]["mean"],
                "ci": percentile_interval(difference),
                "seed_level": seed_level_difference(
                    {cell.record["seed"]: values(cell)[metric] for cell in cells[arm]},
                    {cell.record["seed"]: values(cell)[metric] for cell in cells[reference]},
                ),
            }
        with np.errstate(divide="ignore", invalid="ignore"):
            relative = samples[arm]["mAP50 types"] / samples[reference]["mAP50 types"] - 1
            relative_point = float(np.float64(point[arm]["mAP50 types"]["mean"]) / point[reference]["mAP50 types"]["mean"] - 1)
        entry["mAP50 types relative"] = {"mean": relative_point, "ci": percentile_interval(relative)}
        result[arm] = entry
    return result


def _pct(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{100 * value:.1f}"


def _with_ci(entry: Mapping[str, Any]) -> str:
    low, high = entry["ci"]
    return f"{_pct(entry['mean'])} [{_pct(low)}, {_pct(high)}]"


def _signed(entry: Mapping[str, Any] | None) -> str:
    if not entry or not np.isfinite(entry["mean"]):
        return "n/a"
    low, high = entry["ci"]
    return f"{100 * entry['mean']:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"


def confusion(arm_cells: Sequence[TypedCell]) -> np.ndarray:
    """The confusion matrix summed over an arm's seeds (rows true type, columns the best detection's)."""
    return np.sum([np.array(cell.record["confusion_matrix"]) for cell in arm_cells], axis=0)


def typing_lines(
    cells: Mapping[str, Sequence[TypedCell]],
    point: Mapping[str, Mapping[str, Any]],
    differences: Mapping[str, Mapping[str, Mapping[str, Any]]],
    titles: Mapping[str, str],
) -> list[str]:
    """Markdown: the type metric per arm, recall and AP50 by type, differences, confusion matrices."""
    arms = [arm for arm, arm_cells in cells.items() if arm_cells[0].record["task"] == "types"]
    if not arms:
        return []
    old = any(cell.outcomes.argmax_types for arm in arms for cell in cells[arm])
    metric_name = "mAP50 types" + (" (old metric: argmax type only)" if old else "")
    test_set = cells[arms[0]][0].record["test_set"]
    per_type_lesions = np.bincount(cells[arms[0]][0].outcomes.lesion_type, minlength=len(LESION_TYPES) + 1)[1:]
    lines = [
        "",
        f"Multi-type task. Test set: {test_set['description']}: {test_set['images']} key slices, {test_set['lesions']} lesions, "
        f"{test_set['patients']} patients; lesions per type: " + ", ".join(f"{name} {count}" for name, count in zip(LESION_TYPES, per_type_lesions)) + ".",
        "The type metric: AP50 of each type with every detection scored P(lesion) x P(type | lesion), their mean over the 8 types; "
        "type accuracy and recall by type count each found lesion (IoU >= 0.5) by its best detection's most likely type.",
        "",
        f"| arm | seeds | {metric_name} | type accuracy | sens@4 | AP50 | slice position error (test, mean abs.) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for arm in arms:
        row = point[arm]
        errors = [cell.record["test"].get("slice_position_mae") for cell in cells[arm]]
        error = f"{np.mean(errors):.3f}" if all(e is not None for e in errors) else "-"
        lines.append(
            f"| {titles[arm]} | {len(cells[arm])} | {_with_ci(row['mAP50 types'])} | {_with_ci(row['type accuracy'])} | "
            f"{_with_ci(row['sens@4'])} | {_with_ci(row['AP50'])} | {error} |"
        )
    lines += ["", "Recall of each type among its found lesions (mean over seeds, 95% bootstrap interval):", "",
              "| arm | " + " | ".join(LESION_TYPES) + " |", "|" + " --- |" * (len(LESION_TYPES) + 1)]
    for arm in arms:
        lines.append(f"| {titles[arm]} | " + " | ".join(_with_ci(point[arm][f"recall {name}"]) for name in LESION_TYPES) + " |")
    lines += ["", "AP50 of each type (mean over seeds):", "", "| arm | " + " | ".join(LESION_TYPES) + " |", "|" + " --- |" * (len(LESION_TYPES) + 1)]
    for arm in arms:
        lines.append(f"| {titles[arm]} | " + " | ".join(_pct(point[arm][f"AP50 {name}"]["mean"]) for name in LESION_TYPES) + " |")
    if differences:
        lines += ["", "Paired differences (arm minus the arm it is compared with; points; bootstrap interval, then the seed-level t interval):", "",
                  "| arm | vs | " + " | ".join(f"Δ {m}" for m in DIFFERENCE_METRICS) + " | relative Δ mAP50 types |", "|" + " --- |" * (len(DIFFERENCE_METRICS) + 3)]
        for arm, entry in differences.items():
            cells_text = []
            for metric in DIFFERENCE_METRICS:
                seed_level = entry[metric].get("seed_level")
                cells_text.append(_signed(entry[metric]) + (f"; seeds {_signed(seed_level)}" if seed_level else ""))
            relative = entry["mAP50 types relative"]
            lines.append(f"| {titles[arm]} | {titles[COMPARISONS[arm]]} | " + " | ".join(cells_text) + f" | {100 * relative['mean']:+.1f}% [{100 * relative['ci'][0]:+.1f}%, {100 * relative['ci'][1]:+.1f}%] |")
    for arm in arms:
        matrix = confusion(cells[arm])
        lines += ["", f"Confusion matrix, {titles[arm]} (rows: true type, columns: type of the lesion's best detection, all seeds):", "",
                  "| | " + " | ".join(LESION_TYPES) + " |", "|" + " --- |" * (len(LESION_TYPES) + 1)]
        lines += [f"| {name} | " + " | ".join(str(v) for v in matrix[i]) + " |" for i, name in enumerate(LESION_TYPES)]
    return lines


def _mistaken_for(matrix: np.ndarray, type_index: int) -> str:
    """How the found lesions of a type were typed when wrong, most common first."""
    row = matrix[type_index].astype(float)
    total = row.sum()
    wrong = [(row[j] / total, LESION_TYPES[j]) for j in np.argsort(-row) if j != type_index and row[j] > 0]
    return ", ".join(f"{100 * share:.0f}% as {name}" for share, name in wrong[:2]) if total else "none found"


def typing_claims(
    cells: Mapping[str, Sequence[TypedCell]],
    point: Mapping[str, Mapping[str, Any]],
    differences: Mapping[str, Mapping[str, Mapping[str, Any]]],
    verdict: Callable[..., str],
) -> list[str]:
    """The region-aware graph's targets, each with its numbers and whether it holds."""
    if GRAPH_ON not in differences:
        return []
    lines = []
    gain = differences[GRAPH_ON]["mAP50 types relative"]
    holds = gain["mean"] >= RELATIVE_GAIN and gain["ci"][0] > 0
    lines.append(
        f"- Graph on at least +{100 * RELATIVE_GAIN:.0f}% relative mAP50 over types against graph off, paired interval above 0: "
        f"{verdict(holds, GRAPH_OFF, GRAPH_ON)} ({100 * gain['mean']:+.1f}% [{100 * gain['ci'][0]:+.1f}%, {100 * gain['ci'][1]:+.1f}%]; "
        f"on {_with_ci(point[GRAPH_ON]['mAP50 types'])}, off {_with_ci(point[GRAPH_OFF]['mAP50 types'])}; "
        f"difference {_signed(differences[GRAPH_ON]['mAP50 types'])} points)."
    )
    accuracy = point[GRAPH_ON]["type accuracy"]
    lines.append(
        f"- Type accuracy of found lesions at least {100 * TYPE_ACCURACY:.0f}% with the graph: "
        f"{verdict(accuracy['mean'] >= TYPE_ACCURACY, GRAPH_ON)} ({_with_ci(accuracy)}; graph off {_with_ci(point[GRAPH_OFF]['type accuracy'])})."
    )
    matrix = confusion(cells[GRAPH_ON])
    short = [(name, point[GRAPH_ON][f"recall {name}"]) for name in LESION_TYPES]
    failing = [(index, name, entry) for index, (name, entry) in enumerate(short) if not entry["mean"] >= TYPE_RECALL]
    reasons = "; ".join(f"{name} {_with_ci(entry)}: found ones typed {_mistaken_for(matrix, index)}" for index, name, entry in failing)
    lines.append(
        f"- Recall of every type at least {100 * TYPE_RECALL:.0f}% with the graph: {verdict(not failing, GRAPH_ON)} "
        + (f"(below: {reasons})." if failing else "(lowest: " + ", ".join(f"{name} {_with_ci(entry)}" for name, entry in sorted(short, key=lambda item: item[1]["mean"])[:2]) + ").")
    )
    detection = differences[GRAPH_ON]["sens@4"]
    lines.append(
        f"- Detection sens@4 with the graph not lower than without it (paired interval reaches 0 or above): "
        f"{verdict(detection['ci'][1] >= 0, GRAPH_OFF, GRAPH_ON)} (on minus off {_signed(detection)} points)."
    )
    return lines
