"""The report of `fsd bench ranking`: per search seed, Kendall's tau-b between the supernet's score
and the stand-alone validation score over the ranked architectures, with its bootstrap interval
over architectures; where the search's own genotype lands among them; the table of every
architecture; reference rankers (the parameter count, and the stand-alone val score against
test: the ceiling); and a scatter plot of the two scorings (``ranking.png``).

Read from the result files of :mod:`fsd.cli.bench.ranking` alone, so the report can be rebuilt
on any machine from the committed files.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from fsd.cli.bench.rank_correlation import kendall_tau_b, kendall_tau_interval

#: the proxy's ranking must reach this (issue: a search that finds the best of its space)
TAU_TARGET = 0.5
#: a searched genotype's test sens@4 must be within this of the best known architecture's (and
#: at least the best random architecture's)
TOP_MARGIN = 0.03
#: how the ranking names the genotype a search seed derived (``searched-seed<k>``)
SEARCHED_PREFIX = "searched-seed"


def top_of_space_claim(ranking: dict[str, Any], provisional: bool = False) -> str | None:
    """The claim that the search seed's genotype is at the top of the space: its stand-alone test
    sens@4 at least the best random architecture's and within :data:`TOP_MARGIN` of the best
    known (``provisional`` while some architectures miss trainings); None while its genotype has
    no stand-alone result."""
    own, best_random, best = ranking["searched_test_sens@4"], ranking["best_random_test_sens@4"], ranking["best_known_test_sens@4"]
    if own is None or best_random is None or best is None:
        return None
    verdict = "holds" if own >= best_random and best - own <= TOP_MARGIN + 1e-9 else "does not hold"
    verdict = f"**{verdict} so far** (provisional: not every architecture has every training seed yet)" if provisional else f"**{verdict}**"
    return (
        f"- Search seed {ranking['search_seed']}: its genotype's test sens@4 ({_pct(own)}) at least the best random architecture's "
        f"({_pct(best_random)}) and within {TOP_MARGIN * 100:.0f} points of the best known ({_pct(best)}): {verdict}."
    )


def metric_value(metrics: dict[str, Any], metric: str) -> float:
    """``froc_mean_0.5_4``, or ``sens@4`` (the FROC at 4 FPs per image), of one scoring."""
    value = metrics["froc"]["4"] if metric == "sens@4" else metrics[metric]
    return float("nan") if value is None else float(value)


def load_standalone(results: Path) -> dict[str, list[dict[str, Any]]]:
    """Stand-alone result records by architecture name (one per training seed)."""
    records: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in sorted((results / "architectures").glob("*.json")):
        if not path.name.endswith(".failed.json"):
            record = json.loads(path.read_text())
            records[record["name"]].append(record)
    return dict(records)


def load_failures(results: Path) -> list[dict[str, Any]]:
    """Stand-alone trainings that diverged (left out of the ranking)."""
    return [json.loads(p.read_text()) for p in sorted((results / "architectures").glob("*.failed.json"))]


def load_proxies(results: Path) -> list[dict[str, Any]]:
    """Every supernet's scores, the selection's own proxy first within a search seed."""
    records = [json.loads(p.read_text()) for p in sorted((results / "proxy").glob("search-seed*.json"))]
    return sorted(records, key=lambda r: (int(r["search_seed"]), not r.get("selection_proxy", True), r.get("selection_metric", "")))


def proxy_label(proxy: dict[str, Any]) -> str:
    """How a table names one supernet's proxy: its search seed and metric."""
    own = " (selection's)" if proxy.get("selection_proxy", True) else ""
    metric = proxy.get("selection_metric", "")
    scorer = "search" if metric == "short_training" else "supernet"  # a short training uses no shared weights
    return f"{scorer} {proxy['search_seed']} {metric}{own}".strip()


def architecture_rows(standalone: dict[str, list[dict[str, Any]]], metric: str) -> list[dict[str, Any]]:
    """One row per architecture: parameters, and its val / test scores averaged over training seeds."""
    rows = []
    for name, records in standalone.items():
        ops = records[0]["genotype"]
        rows.append(
            {
                "name": name,
                "seeds": len(records),
                "parameters": records[0]["parameters"],
                "backbone": " / ".join(" ".join(stage["ops"]) for stage in ops["backbone"]["stages"]),
                "head": " ".join(f"{e['from']}->{e['to']} {e['op']}" for e in ops["head"]["edges"]),
                "val": float(np.mean([metric_value(r["val"], metric) for r in records])),
                "val sens@4": float(np.mean([metric_value(r["val"], "sens@4") for r in records])),
                "test sens@4": float(np.mean([metric_value(r["test"], "sens@4") for r in records])),
                "test FROC mean": float(np.mean([metric_value(r["test"], "froc_mean_0.5_4") for r in records])),
                "val history": {
                    epoch: float(np.mean([r["val_history"][epoch] for r in records]))
                    for epoch in records[0].get("val_history", {})
                    if all(epoch in r.get("val_history", {}) for r in records)
                },
                "val lesions": records[0]["val"]["num_lesions"],
                "test lesions": records[0]["test"]["num_lesions"],
            }
        )
    return sorted(rows, key=lambda r: -r["val"])


def search_ranking(rows: list[dict[str, Any]], proxy: dict[str, Any], replicates: int) -> dict[str, Any]:
    """Kendall's tau of one supernet's scores against the stand-alone val and test scores, and
    where the search's own genotype lands among the architectures."""
    usable = [r for r in rows if r["name"] in proxy["scores"]]
    scored = [r for r in usable if np.isfinite(proxy["scores"][r["name"]]) and np.isfinite(r["val"]) and np.isfinite(r["test sens@4"])]
    proxy_scores = [proxy["scores"][r["name"]] for r in scored]
    val = [r["val"] for r in scored]
    test = [r["test sens@4"] for r in scored]
    return {
        **search_outcome(scored, int(proxy["search_seed"])),
        "architectures": len(scored),
        "not_finite": sorted(r["name"] for r in usable if r not in scored),
        "not_trained": sorted(set(proxy["scores"]) - {r["name"] for r in rows}),
        "metric": proxy.get("metric", ""),
        "selection_metric": proxy.get("selection_metric"),
        "selection_proxy": proxy.get("selection_proxy", True),
        "tau_val": _finite(kendall_tau_b(proxy_scores, val)),
        "tau_val_ci": [_finite(v) for v in kendall_tau_interval(proxy_scores, val, replicates)],
        "tau_test": _finite(kendall_tau_b(proxy_scores, test)),
        "tau_test_ci": [_finite(v) for v in kendall_tau_interval(proxy_scores, test, replicates)],
        "proxy_top": max(scored, key=lambda r: proxy["scores"][r["name"]])["name"] if scored else None,
    }


def search_outcome(rows: list[dict[str, Any]], seed: int) -> dict[str, Any]:
    """Where search ``seed``'s genotype lands among ``rows`` (architectures with finite scores):
    its val rank and test sens@4, beside the best random and the best known architecture's."""
    own = next((r for r in rows if r["name"] == f"{SEARCHED_PREFIX}{seed}"), None)
    by_val = sorted(rows, key=lambda r: -r["val"])
    randoms = [r for r in rows if r["name"].startswith("random-")]
    return {
        "search_seed": seed,
        "searched": own["name"] if own else None,
        "searched_val_rank": by_val.index(own) + 1 if own else None,
        "searched_test_sens@4": own["test sens@4"] if own else None,
        "best_known_test_sens@4": max(r["test sens@4"] for r in rows) if rows else None,
        "best_random_test_sens@4": max((r["test sens@4"] for r in randoms), default=None),
    }


def searched_seeds(rows: list[dict[str, Any]]) -> list[int]:
    """The search seeds whose genotypes have stand-alone results."""
    return sorted(int(r["name"].removeprefix(SEARCHED_PREFIX)) for r in rows if r["name"].startswith(SEARCHED_PREFIX))


def reference_rankings(rows: list[dict[str, Any]], replicates: int) -> list[dict[str, Any]]:
    """Rankers to read the supernet's tau against: the parameter count (fewer first, a free
    proxy), the val FROC mean after each validated epoch of the same trainings (how early the
    ranks settle: what a cut-short training can reach; only where every architecture kept its
    history) and the stand-alone val score itself (its best checkpoint's; how well val ranks
    test: the ceiling a proxy judged on val can reach)."""
    scored = [r for r in rows if np.isfinite(r["val"]) and np.isfinite(r["test sens@4"])]
    val = [r["val"] for r in scored]
    test = [r["test sens@4"] for r in scored]
    rankers = {"fewer parameters": [-float(r["parameters"]) for r in scored]}
    epochs = sorted(set.intersection(*(set(r["val history"]) for r in scored)), key=int) if scored else []
    for epoch in epochs:
        rankers[f"val FROC after epoch {epoch} of {epochs[-1]} (same training)"] = [r["val history"][epoch] for r in scored]
    rankers["stand-alone val score"] = val
    result = []
    for name, scores in rankers.items():
        result.append(
            {
                "ranker": name,
                "architectures": len(scored),
                "tau_val": _finite(kendall_tau_b(scores, val)),
                "tau_val_ci": [_finite(v) for v in kendall_tau_interval(scores, val, replicates)],
                "tau_test": _finite(kendall_tau_b(scores, test)),
                "tau_test_ci": [_finite(v) for v in kendall_tau_interval(scores, test, replicates)],
            }
        )
    return result


def _finite(value: float) -> float | None:
    """The value, or None where it is not defined (NaN: e.g. every stand-alone score tied)."""
    return float(value) if np.isfinite(value) else None


def _pct(value: float | None) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{100 * value:.1f}"


def _tau(value: float | None, interval: list[float | None]) -> str:
    if value is None or None in interval:
        return "not defined (tied scores)"
    return f"{value:+.2f} [{interval[0]:+.2f}, {interval[1]:+.2f}]"


def plot_ranking(rows: list[dict[str, Any]], proxies: list[dict[str, Any]], rankings: list[dict[str, Any]], metric: str, out: Path) -> Path:
    """One scatter per search seed (columns) and proxy (rows): the supernet's score against the
    stand-alone val score."""
    seeds = sorted({int(p["search_seed"]) for p in proxies})
    kinds = list(dict.fromkeys((p.get("selection_metric"), p.get("selection_proxy", True)) for p in proxies))
    fig, axes = plt.subplots(len(kinds), len(seeds), figsize=(5.5 * len(seeds), 4.6 * len(kinds)), squeeze=False)
    for axis in axes.flat:
        axis.set_visible(False)
    for proxy, ranking in zip(proxies, rankings):
        axis = axes[kinds.index((proxy.get("selection_metric"), proxy.get("selection_proxy", True))), seeds.index(int(proxy["search_seed"]))]
        axis.set_visible(True)
        scored = [r for r in rows if r["name"] in proxy["scores"]]
        x = [proxy["scores"][r["name"]] for r in scored]
        y = [100 * r["val"] for r in scored]
        colours = ["tab:red" if r["name"].startswith("searched") else "tab:grey" if r["name"].startswith("random") else "tab:blue" for r in scored]
        axis.scatter(x, y, c=colours)
        for r, xi, yi in zip(scored, x, y):
            axis.annotate(r["name"], (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
        axis.set_xlabel(f"{proxy_label(proxy)}: {proxy.get('metric', 'score')}")
        axis.set_ylabel(f"stand-alone val {metric} (%)")
        axis.set_title(f"search seed {proxy['search_seed']}: tau {_tau(ranking['tau_val'], ranking['tau_val_ci'])}", fontsize=9)
        axis.grid(alpha=0.3)
    fig.tight_layout()
    path = out / "ranking.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def summarize_ranking(results: str | Path, metric: str, replicates: int = 2000, command: str = "") -> str:
    """Write ``ranking.md``, ``ranking.json`` and ``ranking.png`` from the result files; returns the markdown."""
    results = Path(results)
    rows = architecture_rows(load_standalone(results), metric)
    proxies = load_proxies(results)
    rankings = [search_ranking(rows, proxy, replicates) for proxy in proxies]
    lines = ["# How well the supernet ranks its space", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lesions = f"{rows[0]['val lesions']} val lesions, {rows[0]['test lesions']} test lesions" if rows else "no architecture trained yet"
    lines += [
        f"{len(rows)} architectures trained stand-alone ({lesions}); stand-alone score: val {metric}, mean over training seeds. "
        f"Kendall's tau-b with a 95% bootstrap interval over architectures.",
        "",
        "| search seed | architectures | proxy | tau vs val | tau vs test sens@4 | proxy's top | searched genotype's val rank | its test sens@4 | best random test sens@4 | best known test sens@4 |",
        "| ---: | ---: | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rankings:
        rank = f"{r['searched_val_rank']} of {r['architectures']}" if r["searched_val_rank"] else "-"
        lines.append(
            f"| {r['search_seed']} | {r['architectures']} | {r['metric']}{'' if r['selection_proxy'] else ' (further proxy)'} | {_tau(r['tau_val'], r['tau_val_ci'])} | "
            f"{_tau(r['tau_test'], r['tau_test_ci'])} | {r['proxy_top']} | {rank} | {_pct(r['searched_test_sens@4'])} | "
            f"{_pct(r['best_random_test_sens@4'])} | {_pct(r['best_known_test_sens@4'])} |"
        )
    references = reference_rankings(rows, replicates)
    lines += ["", "Reference rankers over the same architectures:", "", "| ranker | tau vs val | tau vs test sens@4 |", "| --- | ---: | ---: |"]
    lines += [f"| {r['ranker']} | {_tau(r['tau_val'], r['tau_val_ci'])} | {_tau(r['tau_test'], r['tau_test_ci'])} |" for r in references]
    lines += ["", "Claims:", ""]
    for r in rankings:
        which = "the selection's proxy" if r["selection_proxy"] else f"a further proxy ({r['metric']})"
        claim = f"- Search seed {r['search_seed']}: Kendall tau of {which} (point estimate) at least {TAU_TARGET}:"
        if r["tau_val"] is None:
            lines.append(f"{claim} **cannot be measured** (the stand-alone or supernet scores are all tied).")
            continue
        verdict = "holds" if r["tau_val"] >= TAU_TARGET else "does not hold"
        if r["not_trained"] or r["architectures"] < 3:
            missing = ", ".join(r["not_trained"]) or "-"
            verdict += f" so far** (provisional: {r['architectures']} architectures trained; not yet: {missing})"
            lines.append(f"{claim} **{verdict} (tau {_tau(r['tau_val'], r['tau_val_ci'])}).")
            continue
        lines.append(f"{claim} **{verdict}** (tau {_tau(r['tau_val'], r['tau_val_ci'])}).")
        if r["not_finite"]:
            lines.append(f"  Left out for a non-finite score: {', '.join(r['not_finite'])}.")
    provisional = len({row["seeds"] for row in rows}) > 1 or any(r["not_trained"] for r in rankings)
    finite = [r for r in rows if np.isfinite(r["val"]) and np.isfinite(r["test sens@4"])]
    searched, scored = set(searched_seeds(rows)), {r["search_seed"] for r in rankings}
    seeds = sorted(searched | scored)  # one claim per search, not per proxy
    lines += [claim for claim in (top_of_space_claim(search_outcome(finite, seed), provisional) for seed in seeds) if claim is not None]
    unscored = sorted(searched - scored)
    if unscored:
        lines.append(
            f"- No supernet scores for search seed(s) {', '.join(map(str, unscored))}: the search ran on another machine and "
            "its supernet checkpoint stayed there (a ranking keeps each search's record, not its checkpoint)."
        )
    lines += [
        "",
        "| architecture | seeds | params (M) | val " + metric + " | val sens@4 | test sens@4 | test FROC mean | "
        + " | ".join(proxy_label(p) for p in proxies) + " | backbone | head |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in proxies) + " | --- | --- |",
    ]
    for row in rows:
        scores = " | ".join(f"{p['scores'][row['name']]:.4f}" if row["name"] in p["scores"] else "-" for p in proxies)
        lines.append(
            f"| {row['name']} | {row['seeds']} | {row['parameters'] / 1e6:.2f} | {_pct(row['val'])} | {_pct(row['val sens@4'])} | "
            f"{_pct(row['test sens@4'])} | {_pct(row['test FROC mean'])} | {scores} | {row['backbone']} | {row['head']} |"
        )
    failures = load_failures(results)
    if failures:
        lines += ["", "Stand-alone trainings that diverged (left out):", ""]
        lines += [f"- {f['name']} seed {f['seed']}: {f['failed']}" for f in failures]
    markdown = "\n".join(lines) + "\n"
    (results / "ranking.md").write_text(markdown)
    (results / "ranking.json").write_text(json.dumps({"metric": metric, "rankings": rankings, "references": references, "architectures": rows}, indent=2) + "\n")
    if rows and proxies:
        plot_ranking(rows, proxies, rankings, metric, results)
    return markdown
