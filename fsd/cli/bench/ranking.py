"""`fsd bench ranking`: does the supernet rank the architectures of its space the way training them
does? The search phase measured on its own (Yu et al. 2020, "Evaluating the search phase of
NAS"): a one-shot search can only find the top of its space when its proxy ranks it first.

Architectures (``bench.ranking``): ``random_genotypes`` random architectures of the space (the
accuracy benchmark's random arm draws the same ones), further genotype files (e.g. an earlier
search's result), and the genotype each search seed finds. Each trains stand-alone with the
config's ``train`` recipe once per training seed and is scored on the validation set (ideally
``data.val_data``, a set of its own patients large enough to tell models apart) and on the test
set (``bench.test_data``; scores only). Each search seed's proxy scores every architecture the
way the selection scored its candidates: the trained supernet (:mod:`search.proxy`), or a short
stand-alone training (:mod:`search.short_training`).

Resumable, one small result file per finished piece, so the stand-alone results are data later
work reuses:

- ``architectures/<name>-seed<k>.json``: one stand-alone training (genotype, parameters, val and
  test metrics, training time, data fingerprints, config, command), or ``.failed.json`` when its
  training diverged (the measurement goes on without it);
- ``proxy/search-seed<s>.json``: that search's supernet score of every architecture with the
  selection's own proxy, and ``proxy/search-seed<s>.<metric>.json`` with each further proxy of
  ``bench.ranking.proxy_metrics`` (the same trained supernet, scored another way);
- ``searches/seed<s>.json``: the genotype the search found;

a result in a directory of ``bench.ranking.reuse`` (an earlier ranking) of the same architecture,
training seed and training settings is copied instead of trained again, marked ``reused_from``;

and the report (:mod:`fsd.cli.bench.ranking_report`): ``ranking.md``, ``ranking.json``,
``ranking.png``.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import typer

from fsd.cli.bench.accuracy import (
    RANDOM_SEED_BASE,
    data_fingerprints,
    device_name,
    train_and_score,
)
from fsd.cli.bench.ranking_report import SEARCHED_PREFIX
from fsd.cli.bench.searches import recorded_config, run_search
from fsd.cli.data_setup import ensure_data
from fsd.config import FsdConfig
from fsd.device import resolve_device
from fsd.engine.loop import TrainingError
from fsd.engine.metrics_log import read_log
from fsd.errors import FsdError
from fsd.models import DetectorConfig, Genotype, architecture_record, build_from_architecture, load_genotype
from fsd.models.complexity import count_parameters
from fsd.progress import progress_bar
from search.loop import random_genotype, supernet_proxy
from search.proxy import SEARCH_CHECKPOINT, outside_space


def genotype_files(config: FsdConfig) -> dict[str, Genotype]:
    """The further genotype files of ``bench.ranking``, by name; FsdError for a file outside the
    searched space or a name another ranked architecture has."""
    chosen: dict[str, Genotype] = {}
    for path in config.bench.ranking.genotypes:
        genotype = load_genotype(path)
        problem = outside_space(genotype, config.search.space)
        if problem:
            raise FsdError(f"{path}: not an architecture of the searched space ({problem})")
        name = Path(path).stem
        if name in chosen or name.startswith(("random-", SEARCHED_PREFIX)):
            raise FsdError(f"{path}: the name {name!r} is taken by another ranked architecture; rename the file")
        chosen[name] = genotype
    return chosen


def ranked_architectures(config: FsdConfig, out: Path, results: Path, device: str, progress: bool) -> dict[str, Genotype]:
    """Every architecture the ranking measures, by name (searching first where needed)."""
    ranking = config.bench.ranking
    chosen: dict[str, Genotype] = {f"random-{k}": random_genotype(config, RANDOM_SEED_BASE + k) for k in range(ranking.random_genotypes)}
    chosen.update(genotype_files(config))
    for seed in ranking.search_seeds:
        chosen[f"{SEARCHED_PREFIX}{seed}"] = run_search(config, out, results, seed, device, progress)
    if len(chosen) < 3:
        raise FsdError(f"a ranking needs at least 3 architectures; bench.ranking gives {len(chosen)}")
    return chosen


def standalone_file(results: Path, name: str, seed: int) -> Path:
    """The result file of one stand-alone training (``.failed.json`` beside it when it diverged)."""
    return results / "architectures" / f"{name}-seed{seed}.json"


def write_json(path: Path, record: dict[str, Any]) -> Path:
    """Write ``record`` whole or not at all (a kill mid-write leaves no half file to skip on)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(temporary, path)
    return path


def check_same_architecture(path: Path, name: str, genotype: Genotype) -> None:
    """A finished result of ``name`` must be of the same architecture (the space or a genotype
    file may have changed since); FsdError otherwise."""
    stored = json.loads(path.read_text()).get("genotype_key")
    if stored is not None and stored != genotype.key:
        raise FsdError(f"{path} was written for another architecture named {name!r}; use a new --results directory")


def validation_history(run: Path) -> dict[str, float]:
    """The run's validation FROC mean (0.5-4 FPs) after each epoch it was validated at: how early
    its rank among architectures settles (a learning-curve reference ranker in the report)."""
    history = {}
    for record in read_log(run / "metrics.jsonl"):
        value = record.get("metrics", {}).get("froc_mean_0.5_4") if record.get("type") == "val" else None
        if value is not None:
            history[str(record["epoch"])] = float(value)
    return history


def training_settings(config: dict[str, Any]) -> dict[str, Any]:
    """What a stand-alone result depends on: a dumped config without its name, its search section
    and the ranking's own settings (the data, model, recipe, evaluation and test set stay)."""
    settings = {k: v for k, v in config.items() if k not in ("name", "search")}
    settings["bench"] = {k: v for k, v in settings.get("bench", {}).items() if k != "ranking"}
    return settings


def recorded_training_settings(config: dict[str, Any]) -> dict[str, Any] | None:
    """The training settings of a result's recorded config (see :func:`recorded_config`)."""
    recorded = recorded_config(config)
    return None if recorded is None else training_settings(recorded.model_dump(mode="json"))


def reusable_result(seeded: FsdConfig, genotype: Genotype) -> dict[str, Any] | None:
    """A finished stand-alone result in one of ``bench.ranking.reuse``'s results directories of
    the same architecture, training seed and training settings (the first found), marked with
    where it came from; None when there is none."""
    wanted = training_settings(seeded.model_dump(mode="json"))
    for folder in seeded.bench.ranking.reuse:
        for path in sorted((Path(folder) / "architectures").glob(f"*-seed{seeded.seed}.json")):
            record = json.loads(path.read_text())
            if record.get("genotype_key") == genotype.key and record.get("seed") == seeded.seed and recorded_training_settings(record.get("config", {})) == wanted:
                return {**record, "reused_from": str(path)}
    return None


def train_standalone(config: FsdConfig, name: str, genotype: Genotype, seed: int, out: Path, results: Path, device: str, progress: bool) -> Path:
    """Train one architecture stand-alone with one seed and record its scores (skipped when its
    result file exists; copied from ``bench.ranking.reuse`` when a matching result is there)."""
    result_file = standalone_file(results, name, seed)
    failed = result_file.with_suffix(".failed.json")
    run = out / "runs" / f"{name}-seed{seed}"
    for done in (result_file, failed):
        if done.is_file():
            check_same_architecture(done, name, genotype)
            record = json.loads(done.read_text())
            if done == result_file and "val_history" not in record:  # results of before the history was kept
                source = json.loads(Path(record["reused_from"]).read_text()) if Path(record.get("reused_from", "")).is_file() else {}
                if "val_history" in source:
                    write_json(done, {**record, "val_history": source["val_history"]})
                elif (run / "metrics.jsonl").is_file():
                    write_json(done, {**record, "val_history": validation_history(run)})
            return done
    seeded = config.model_copy(update={"seed": seed})
    reused = reusable_result(seeded, genotype)
    if reused is not None:
        return write_json(result_file, {**reused, "name": name})
    architecture = architecture_record(genotype=genotype)
    try:
        scored = train_and_score(seeded, architecture, run, device, progress)
    except TrainingError as error:
        return write_json(failed, {"name": name, "seed": seed, "genotype_key": genotype.key, "failed": str(error), "command": shlex.join(sys.argv)})
    network = build_from_architecture(architecture, DetectorConfig.from_config(seeded))
    record = {
        "name": name,
        "seed": seed,
        "genotype": genotype.to_dict(),
        "genotype_key": genotype.key,
        "parameters": count_parameters(network),
        "train_seconds": round(scored.train_seconds, 1),
        "val": scored.val,
        "val_history": validation_history(run),
        "test": scored.test,
        "test_set": {"description": scored.test_description, "images": len(scored.test_set), "lesions": int(scored.outcomes.lesions.sum())},
        "data": data_fingerprints(seeded, scored.test_set.root),
        "device": device_name(device),
        "command": shlex.join(sys.argv),
        "config": seeded.model_dump(mode="json"),
    }
    return write_json(result_file, record)


def proxy_file(results: Path, seed: int, metric: str, own: bool) -> Path:
    """The supernet scores of search ``seed`` with one proxy (the selection's own, or a further one)."""
    return results / "proxy" / (f"search-seed{seed}.json" if own else f"search-seed{seed}.{metric}.json")


def score_with_supernet(
    architectures: dict[str, Genotype], seed: int, metric: str, own: bool, out: Path, results: Path, device: str, progress: bool
) -> Path | None:
    """Search ``seed``'s proxy score of every architecture with the ``metric`` proxy (only those
    not scored before; the file is written after each, since a short-training proxy takes
    minutes per architecture); ``own``: the proxy the search's selection used. Where scores are
    missing and the search's supernet is not in ``out`` (its record came from another machine),
    warns and leaves them out: the file as it is, or None."""
    result_file = proxy_file(results, seed, metric, own)
    record: dict[str, Any] = json.loads(result_file.read_text()) if result_file.is_file() else {}
    if record.get("selection_metric", metric) != metric:
        record = {}  # scores of another proxy are never relabelled as this one's
    record = record or {"search_seed": seed, "scores": {}, "genotype_keys": {}}
    keys = record.setdefault("genotype_keys", {})
    missing = [name for name in architectures if name not in record["scores"] or keys.get(name) != architectures[name].key]
    described = {"selection_metric": metric, "selection_proxy": own}
    if not missing and described.items() <= record.items():
        return result_file
    if missing:
        run = out / "search" / f"seed{seed}"
        if not (run / SEARCH_CHECKPOINT).is_file():
            # the search record was committed from another machine; its supernet stayed there
            typer.echo(
                f"warning: search seed {seed}'s supernet ({run / SEARCH_CHECKPOINT}) is not on this machine, so its "
                f"{metric} scores of {len(missing)} architecture(s) are left out; the report goes on without them",
                err=True,
            )
            return result_file if result_file.is_file() else None
        proxy = supernet_proxy(run, resolve_device(device), metric)
        record.update({"metric": proxy.metric, "command": shlex.join(sys.argv), **described})
        bar = progress_bar(total=len(missing), desc=f"search {seed} {metric} scores", disable=not progress)
        for name in missing:
            record["scores"][name] = proxy.score_genotype(architectures[name])
            keys[name] = architectures[name].key
            write_json(result_file, record)
            bar.update(1)
        bar.close()
    record.update(described)
    return write_json(result_file, record)


def proxy_metrics(config: FsdConfig) -> list[tuple[str, bool]]:
    """The proxies every search's architectures are scored with: (metric, is it the selection's
    own). A selection that scores no candidates with a proxy (halving trains them; alphas) has no
    own proxy: the supernet's ``selection_metric`` is then a further one."""
    own = config.search.selection_metric
    further = [(m, False) for m in dict.fromkeys(config.bench.ranking.proxy_metrics) if m != own]
    return ([(own, True)] if config.search.selection == "evolution" else [(own, False)]) + further


def run_ranking_benchmark(config: FsdConfig, out_dir: str | Path, results_dir: str | Path, device: str = "auto", progress: bool = True) -> list[Path]:
    """Every missing stand-alone training and proxy scoring (see the module docstring); returns
    the result files. The searches run first (their genotypes join the ranked set), then the
    stand-alone trainings, then the proxies."""
    out, results = Path(out_dir), Path(results_dir)
    genotype_files(config)  # a wrong genotype file fails before any data is generated
    ensure_data(config, device, progress)
    architectures = ranked_architectures(config, out, results, device, progress)
    files = [
        train_standalone(config, name, genotype, seed, out, results, device, progress)
        for seed in config.bench.ranking.train_seeds
        for name, genotype in architectures.items()
    ]
    for seed in config.bench.ranking.search_seeds:
        for metric, own in proxy_metrics(config):
            scored = score_with_supernet(architectures, seed, metric, own, out, results, device, progress)
            if scored is not None:
                files.append(scored)
    return files
