"""The accuracy benchmark's table, claims and figures, from the finished cells' result files.

Intervals are bootstrap percentiles (95%) over two levels at once: the test patients are drawn
with replacement (the same draw for every arm, so differences are paired) and, within each arm,
its seeds are drawn with replacement; an arm's value in a replicate is the mean over its drawn
seeds. Per-image outcomes make every replicate exact (:class:`fsd.eval.outcomes.Outcomes`).

Writes ``accuracy.md`` (tables, search genotypes, the claims with whether they hold),
``accuracy.json`` (every estimate and interval), ``froc_bands.png`` (FROC curves with bands)
and ``differences.png`` (the paired differences against the searched FSD).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from fsd.cli.bench.percentile_interval import percentile_interval
from fsd.cli.bench.seed_level import seed_level_difference
from fsd.cli.bench.typing_report import type_values, typing_claims, typing_differences, typing_lines
from fsd.eval.outcomes import Outcomes

FROC_GRID = np.array([0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0])
MAIN_METRICS = ("sens@0.5", "sens@1", "sens@2", "sens@4", "sens@8", "sens@16", "mean 0.5-4", "AP50")
REFERENCE = "fsd"
#: general-purpose baselines; the claim is against the best of those run (chosen on val)
RESNET_BASELINES = ("resnet18_fpn", "resnet50_fpn", "resnet18_fpn_gn", "resnet50_fpn_gn")


@dataclass
class Cell:
    record: dict[str, Any]
    outcomes: Outcomes

    @property
    def arm(self) -> str:
        return str(self.record["arm"])


def load_cells(results: Path, order: Sequence[str] = ()) -> dict[str, list[Cell]]:
    """Every finished cell in ``results/cells``, by arm (arms in ``order`` first), in seed order."""
    cells: dict[str, list[Cell]] = {}
    for path in sorted((results / "cells").glob("*.json")):
        if path.name.endswith(".failed.json"):
            continue
        record = json.loads(path.read_text())
        cells.setdefault(record["arm"], []).append(Cell(record, Outcomes.load(path.with_suffix(".npz"))))
    for arm in cells.values():
        arm.sort(key=lambda cell: cell.record["seed"])
    rank = {name: index for index, name in enumerate(order)}
    return dict(sorted(cells.items(), key=lambda item: rank.get(item[0], len(rank))))


def cell_metrics(outcomes: Outcomes, weights: np.ndarray | None = None) -> dict[str, float]:
    metrics = outcomes.metrics(weights, fps=tuple(float(f) for f in (0.5, 1, 2, 4, 8, 16)))
    values = {f"sens@{rate}": metrics["froc"][rate] for rate in ("0.5", "1", "2", "4", "8", "16")}
    values["mean 0.5-4"] = metrics["froc_mean_0.5_4"]
    values["AP50"] = metrics["AP50"]
    if "mAP50_types" in metrics:
        values.update(type_values(metrics))
    return values


def patient_weights(cells: dict[str, list[Cell]], replicates: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The test patients and, per replicate, how often each is drawn (shared by every arm)."""
    patients = np.unique(np.concatenate([cell.outcomes.patient for arm in cells.values() for cell in arm]))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(patients), size=(replicates, len(patients)))
    counts = np.stack([np.bincount(row, minlength=len(patients)) for row in draws])
    return patients, counts


def bootstrap(cells: dict[str, list[Cell]], replicates: int, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Per arm and metric: the arm's value in every replicate (see the module docstring)."""
    patients, counts = patient_weights(cells, replicates, seed)
    rng = np.random.default_rng(seed + 1)
    result: dict[str, dict[str, np.ndarray]] = {}
    for arm, arm_cells in cells.items():
        per_cell: list[dict[str, np.ndarray]] = []
        for cell in arm_cells:
            index = np.searchsorted(patients, cell.outcomes.patient)
            values = [cell_metrics(cell.outcomes, counts[r][index]) for r in range(replicates)]
            per_cell.append({name: np.array([v[name] for v in values]) for name in values[0]})
        picks = rng.integers(0, len(arm_cells), size=(replicates, len(arm_cells)))
        result[arm] = {
            name: np.array([nan_mean([per_cell[c][name][r] for c in picks[r]]) for r in range(replicates)])
            for name in per_cell[0]
        }
    return result


def nan_mean(values: Sequence[float]) -> float:
    """The mean of the finite values (NaN when there is none: a type with no found lesion)."""
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def estimates(cells: dict[str, list[Cell]], replicates: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    """Per arm: the mean over seeds of each metric on the whole test set, with its interval."""
    table: dict[str, dict[str, Any]] = {}
    for arm, arm_cells in cells.items():
        full = [cell_metrics(cell.outcomes) for cell in arm_cells]
        table[arm] = {
            name: {"mean": nan_mean([f[name] for f in full]), "ci": percentile_interval(replicates[arm][name]), "seeds": [f[name] for f in full]}
            for name in full[0]
        }
    return table


def paired_difference(replicates: dict[str, dict[str, np.ndarray]], point: dict[str, dict[str, Any]], arm: str, reference: str, metric: str) -> dict[str, Any]:
    difference = replicates[arm][metric] - replicates[reference][metric]
    return {"mean": point[arm][metric]["mean"] - point[reference][metric]["mean"], "ci": percentile_interval(difference)}


def _pct(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{100 * value:.1f}"


def _with_ci(entry: dict[str, Any]) -> str:
    low, high = entry["ci"]
    return f"{_pct(entry['mean'])} [{_pct(low)}, {_pct(high)}]"


def _signed(entry: dict[str, Any]) -> str:
    low, high = entry["ci"]
    if not np.isfinite(entry["mean"]):
        return "n/a"
    return f"{100 * entry['mean']:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"


def mean_val(arm_cells: Sequence[Cell]) -> float:
    """An arm's mean val FROC (0.5-4 FPs) over its seeds: what choices between arms rest on."""
    return float(np.mean([val_froc(cell) for cell in arm_cells]))


def val_froc(cell: Cell) -> float:
    """A cell's val FROC mean (0.5-4 FPs); -1 when it has none, so it never wins a choice."""
    value = cell.record["val"].get("froc_mean_0.5_4")
    return -1.0 if value is None else float(value)


def _negated(entry: dict[str, Any]) -> str:
    """A difference "arm minus FSD" written as "FSD minus arm" (mean and interval, in points)."""
    low, high = entry["ci"]
    return f"{-100 * entry['mean']:+.1f} [{-100 * high:+.1f}, {-100 * low:+.1f}]"


def best_on_val(arm_cells: Sequence[Cell]) -> Cell:
    return max(arm_cells, key=val_froc)


def genotype_summary(results: Path) -> tuple[list[str], bool | None, float]:
    """A line per search seed (its genotype), whether all searches agree, and the mean search time."""
    lines, keys, seconds = [], [], []
    for path in sorted((results / "searches").glob("seed*.json")):
        record = json.loads(path.read_text())
        genotype = record["genotype"]
        backbone = ", ".join(f"{stage['width']}: " + "/".join(stage["ops"]) for stage in genotype["backbone"]["stages"])
        head = ", ".join(f"{e['from']}->{e['to']} {e['op']}" for e in genotype["head"]["edges"])
        lines.append(f"- seed {record['seed']} ({record['seconds'] / 60:.1f} min): backbone {backbone}; head {head}")
        keys.append(json.dumps([genotype["backbone"], genotype["head"]], sort_keys=True))
        seconds.append(record["seconds"])
    agree = None if not keys else len(set(keys)) == 1
    return lines, agree, float(np.mean(seconds)) if seconds else float("nan")


def missing_cells(cells: dict[str, list[Cell]], planned: Mapping[str, int]) -> dict[str, tuple[int, int]]:
    """Arms with fewer finished cells than planned: arm -> (finished, planned)."""
    done = {arm: len(arm_cells) for arm, arm_cells in cells.items()}
    return {arm: (done.get(arm, 0), count) for arm, count in planned.items() if done.get(arm, 0) < count}


def claims(
    point: dict[str, dict[str, Any]],
    differences: dict[str, dict[str, dict[str, Any]]],
    parameters: dict[str, float],
    missing: Mapping[str, tuple[int, int]] | None = None,
    cells: Mapping[str, Sequence[Cell]] | None = None,
    type_differences: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
) -> list[str]:
    """Each target of the method, with the numbers and whether it holds; a verdict that rests on
    an arm with fewer finished cells than planned (``missing``) says so ("so far", and which)."""
    lines = []
    missing = missing or {}

    def verdict(holds: bool, *arms: str) -> str:
        """"holds" or not, provisional when one of the ``arms`` the claim rests on is unfinished."""
        text = "holds" if holds else "does not hold"
        short = [f"{arm} {missing[arm][0]} of {missing[arm][1]}" for arm in arms if arm in missing]
        if not short:
            return f"**{text}**"
        return f"**{text} so far** (provisional: cells finished {', '.join(short)})"

    if "random" in differences:
        d = differences["random"]["sens@4"]
        median_random = parameters.get("random_median", float("nan"))
        holds = -d["mean"] >= 0.03 and -d["ci"][1] > 0 and parameters.get(REFERENCE, np.inf) <= median_random
        lines.append(
            f"- Searched FSD at least 3 points sens@4 above the mean random architecture, paired interval above 0, at no more "
            f"parameters than the random median: {verdict(holds, REFERENCE, 'random')} (FSD minus random: {-100 * d['mean']:+.1f} "
            f"[{-100 * d['ci'][1]:+.1f}, {-100 * d['ci'][0]:+.1f}] points; {parameters.get(REFERENCE, float('nan')) / 1e6:.2f} M vs "
            f"median {median_random / 1e6:.2f} M parameters)."
        )
    baselines = [arm for arm in RESNET_BASELINES if arm in differences and cells is not None and arm in cells]
    if baselines and cells is not None:
        best = max(baselines, key=lambda arm: mean_val(cells[arm]))
        d = differences[best]["AP50"]
        ratio = parameters.get(REFERENCE, np.inf) / parameters.get(best, np.nan)
        holds = -d["mean"] >= 0.03 and -d["ci"][1] > 0 and ratio <= 0.6
        seed_level = d.get("seed_level")
        seed_text = f"; seed-level t {_negated(seed_level)}" if seed_level else ""
        lines.append(
            f"- Searched FSD at least 3 points AP50 above the best ResNet-FPN baseline, paired interval above 0, with at most 60% "
            f"of its parameters: {verdict(holds, REFERENCE, *RESNET_BASELINES)} (best on val of {', '.join(baselines)}: {best}; FSD minus it: "
            f"{_negated(d)} points AP50{seed_text}; {100 * ratio:.1f}% of its parameters)."
        )
    if "fsd_gn" in differences and "fsd_bn" in differences:
        gn, bn = differences["fsd_gn"]["sens@4"], differences["fsd_bn"]["sens@4"]
        holds = gn["mean"] <= 0 and bn["ci"][1] < 0
        lines.append(
            f"- SN at least as good as GN and better than BN at 2 images per step (sens@4): {verdict(holds, REFERENCE, 'fsd_gn', 'fsd_bn')} "
            f"(GN minus SN {_signed(gn)}, BN minus SN {_signed(bn)} points)."
        )
    if cells is not None and type_differences:
        lines += typing_claims(cells, point, type_differences, verdict)
    return lines


def plot_froc_bands(cells: dict[str, list[Cell]], titles: dict[str, str], replicates: int, out: Path, seed: int = 0) -> Path:
    """Mean FROC curve over seeds per arm, with the 95% bootstrap band over patients."""
    patients, counts = patient_weights(cells, min(replicates, 300), seed)
    fig, axis = plt.subplots(figsize=(8, 5.5))
    cmap = plt.get_cmap("tab10")
    for index, (arm, arm_cells) in enumerate(cells.items()):
        curves = np.array([cell.outcomes.sensitivity_curve(FROC_GRID) for cell in arm_cells]).mean(axis=0)
        replicate_curves = []
        for row in counts:
            per_cell = [cell.outcomes.sensitivity_curve(FROC_GRID, row[np.searchsorted(patients, cell.outcomes.patient)]) for cell in arm_cells]
            replicate_curves.append(np.mean(per_cell, axis=0))
        low, high = np.percentile(np.array(replicate_curves), [2.5, 97.5], axis=0)
        color = cmap(index % 10)
        axis.plot(FROC_GRID, curves, marker="o", markersize=3, color=color, label=f"{titles[arm]} ({len(arm_cells)} seeds)")
        axis.fill_between(FROC_GRID, low, high, color=color, alpha=0.15)
    axis.set_xscale("log", base=2)
    axis.set_xticks(FROC_GRID, [f"{f:g}" for f in FROC_GRID])
    axis.set_xlabel("average false positives per image")
    axis.set_ylabel("sensitivity")
    axis.set_ylim(0, 1)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="lower right")
    axis.set_title("FROC on the test set: mean over seeds, 95% bootstrap band over patients")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_differences(differences: dict[str, dict[str, dict[str, Any]]], titles: dict[str, str], out: Path) -> Path:
    """Forest plot: every arm minus the searched FSD, sens@4 and AP50, with paired 95% intervals."""
    arms = list(differences)
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * len(arms) + 1.8), sharey=True)
    for axis, metric in zip(axes, ("sens@4", "AP50")):
        for row, arm in enumerate(arms):
            entry = differences[arm][metric]
            low, high = entry["ci"]
            axis.errorbar(100 * entry["mean"], row, xerr=[[100 * (entry["mean"] - low)], [100 * (high - entry["mean"])]], fmt="o", color="black", capsize=3)
        axis.axvline(0, color="grey", linewidth=1)
        axis.set_title(f"{metric}: arm minus searched FSD (points)", fontsize=9)
        axis.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(arms)), [titles[a] for a in arms], fontsize=8)
    axes[0].invert_yaxis()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def summarize(
    results_dir: str | Path, replicates: int = 1000, command: str = "", order: Sequence[str] = (), planned: Mapping[str, int] | None = None
) -> str:
    """Write the report files into ``results_dir`` from its finished cells (arms in ``order``
    first); returns the markdown. ``planned``: the cells each arm should have (arm -> count), so
    that a partial table says how far it got and which verdicts are provisional."""
    results = Path(results_dir)
    cells = load_cells(results, order)
    if not cells:
        return "no finished cells yet"
    titles = {arm: arm_cells[0].record["title"] for arm, arm_cells in cells.items()}
    samples = bootstrap(cells, replicates)
    point = estimates(cells, samples)
    differences: dict[str, dict[str, dict[str, Any]]] = {}
    if REFERENCE in cells:
        for arm in cells:
            if arm != REFERENCE and cells[arm][0].record["task"] == "binary":
                differences[arm] = {m: paired_difference(samples, point, arm, REFERENCE, m) for m in ("sens@4", "mean 0.5-4", "AP50")}
                for metric, entry in differences[arm].items():
                    entry["seed_level"] = seed_level_difference(
                        {c.record["seed"]: cell_metrics(c.outcomes)[metric] for c in cells[arm]},
                        {c.record["seed"]: cell_metrics(c.outcomes)[metric] for c in cells[REFERENCE]},
                    )
    type_differences = typing_differences(cells, samples, point, lambda cell: cell_metrics(cell.outcomes))
    parameters = {arm: float(np.mean([c.record["parameters"] for c in arm_cells])) for arm, arm_cells in cells.items()}
    if "random" in cells:
        parameters["random_median"] = float(np.median([c.record["parameters"] for c in cells["random"]]))
    any_cell = next(iter(cells.values()))[0].record
    test_set = any_cell["test_set"]
    lines = [
        f"Test set: {test_set['description']}: {test_set['images']} key slices, {test_set['lesions']} lesions, "
        f"{test_set['patients']} patients. Device: {any_cell['device']}. Intervals: 95% bootstrap over test "
        f"patients and seeds ({replicates} replicates). Sensitivities and AP in %; multi-type arms are scored "
        f"class-agnostically in this table.",
        "",
        "| arm | seeds | params (M) | GFLOPs | " + " | ".join(MAIN_METRICS) + " | Δ sens@4 vs FSD | Δ AP50 vs FSD | Δ sens@4 vs FSD, seed-level t | train min |",
        "|" + " --- |" * (len(MAIN_METRICS) + 8),
    ]
    for arm, arm_cells in cells.items():
        row = point[arm]
        delta = differences.get(arm, {})
        minutes = np.mean([c.record["train_seconds"] for c in arm_cells]) / 60
        lines.append(
            f"| {titles[arm]} | {len(arm_cells)} | {parameters[arm] / 1e6:.2f} | {np.mean([c.record['gflops'] for c in arm_cells]):.1f} | "
            + " | ".join(_with_ci(row[m]) if m in ("sens@4", "mean 0.5-4", "AP50") else _pct(row[m]["mean"]) for m in MAIN_METRICS)
            + f" | {_signed(delta['sens@4']) if delta else '-'} | {_signed(delta['AP50']) if delta else '-'} | "
            + f"{_signed(delta['sens@4']['seed_level']) if delta and delta['sens@4'].get('seed_level') else '-'} | {minutes:.1f} |"
        )
    if "random" in cells:
        best = best_on_val(cells["random"])
        metrics = cell_metrics(best.outcomes)
        lines += ["", f"Random architectures: the best on val (seed {best.record['seed']}, {best.record['parameters'] / 1e6:.2f} M parameters) scores "
                  f"sens@4 {_pct(metrics['sens@4'])}, AP50 {_pct(metrics['AP50'])} on the test set; per genotype sens@4: "
                  + ", ".join(_pct(cell_metrics(c.outcomes)["sens@4"]) for c in cells["random"]) + "."]
    lines += typing_lines(cells, point, type_differences, titles)
    recalibrated = [c for arm in cells.values() for c in arm if c.record.get("val_before_recalibration")]
    if recalibrated:
        lines += ["", "Recomputed BN statistics (val split, best epoch; mean over seeds):", "", "| arm | val mean 0.5-4 before | after | mean importance IN/LN/BN (means) |", "| --- | --- | --- | --- |"]
        for arm, arm_cells in cells.items():
            with_both = [c for c in arm_cells if c.record.get("val_before_recalibration")]
            if not with_both:
                continue
            before = np.mean([c.record["val_before_recalibration"]["froc_mean_0.5_4"] for c in with_both])
            after = np.mean([c.record["val"]["froc_mean_0.5_4"] for c in with_both])
            importance = [c.record.get("norm_importance") or {} for c in with_both]
            mixing = "-"
            if importance and importance[0].get("mean"):
                names = list(importance[0]["mean"])
                mixing = " / ".join(f"{np.mean([i['mean'][n] for i in importance]):.2f}" for n in names)
            lines.append(f"| {titles[arm]} | {_pct(before)} | {_pct(after)} | {mixing} |")
    failures = sorted((results / "cells").glob("*.failed.json"))
    if failures:
        lines += ["", "Cells whose training failed (left out of the table):", ""]
        lines += [f"- {json.loads(p.read_text())['arm']} seed {json.loads(p.read_text())['seed']}: {json.loads(p.read_text())['failed']}" for p in failures]
    genotype_lines, agree, search_seconds = genotype_summary(results)
    if genotype_lines:
        lines += ["", f"Search ({len(genotype_lines)} seeds, {search_seconds / 60:.1f} min each on average); the genotypes "
                  + ("agree:" if agree else "differ:"), ""] + genotype_lines
    missing = missing_cells(cells, planned or {})
    if planned:
        finished = sum(min(len(cells.get(arm, [])), count) for arm, count in planned.items())
        progress = f"Progress: {finished} of {sum(planned.values())} planned cells finished"
        if missing:
            progress += " (missing: " + ", ".join(f"{arm} {done} of {count}" for arm, (done, count) in missing.items()) + "); the same command resumes the rest"
        lines += ["", progress + "."]
    lines += ["", "Claims:", ""] + claims(point, differences, parameters, missing, cells, type_differences)
    if command:
        lines += ["", f"Command: `{command}`"]
    markdown = "\n".join(lines) + "\n"
    (results / "accuracy.md").write_text(markdown)
    (results / "accuracy.json").write_text(
        json.dumps({"estimates": point, "differences": differences, "type_differences": type_differences, "parameters": parameters}, indent=2, default=float) + "\n"
    )
    plot_froc_bands(cells, titles, replicates, results / "froc_bands.png")
    if differences:
        plot_differences(differences, titles, results / "differences.png")
    return markdown
