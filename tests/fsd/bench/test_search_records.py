"""Search records shared between benchmarks: a benchmark that runs the same search as another
(the accuracy benchmark scoring the ranking's searches) takes that one's committed record instead
of searching again, and only when every search setting is the same."""

from __future__ import annotations

import json
from pathlib import Path

from bench_fixtures import toy_config

from fsd.cli.bench.searches import (
    committed_search,
    run_search,
    search_config,
    search_record_file,
    search_settings,
    write_record,
)
from fsd.config import FsdConfig, load_config
from search.loop import random_genotype

CONFIGS = Path(__file__).parents[3] / "configs"


def borrowing_config(config: FsdConfig, other_results: Path) -> FsdConfig:
    bench = config.bench.model_copy(update={"search_records": (other_results,)})
    return config.model_copy(update={"name": "accuracy", "bench": bench})


def test_another_benchmarks_record_serves_the_same_search(tmp_path: Path):
    config = toy_config(tmp_path)
    genotype = random_genotype(config, 5)
    ranking = tmp_path / "ranking_results"
    record = {"seed": 0, "seconds": 12.5, "genotype": genotype.to_dict(), "config": search_settings(search_config(config, 0))}
    write_record(record, search_record_file(ranking, 0))

    accuracy = borrowing_config(config, ranking)
    found = run_search(accuracy, tmp_path / "runs", tmp_path / "accuracy_results", 0, "cpu", progress=False)
    assert found.to_dict() == genotype.to_dict()
    assert not (tmp_path / "runs").exists(), "nothing was searched"
    kept = search_record_file(tmp_path / "accuracy_results", 0)
    assert json.loads(kept.read_text()) == record, "the borrowed record is kept beside this benchmark's results"


def test_a_record_of_other_search_settings_is_not_borrowed(tmp_path: Path):
    config = toy_config(tmp_path)
    ranking = tmp_path / "ranking_results"
    other = config.model_copy(update={"search": config.search.model_copy(update={"epochs": 3})})
    stale = {"seed": 0, "seconds": 1.0, "genotype": random_genotype(config, 5).to_dict(), "config": search_settings(search_config(other, 0))}
    write_record(stale, search_record_file(ranking, 0))

    accuracy = borrowing_config(config, ranking)
    assert committed_search(accuracy, tmp_path / "accuracy_results", 0) is None, "the search must run"
    assert committed_search(borrowing_config(other, ranking), tmp_path / "other_results", 0) is not None
    assert committed_search(accuracy, tmp_path / "accuracy_results", 1) is None, "nor is another seed's record"
    assert not (tmp_path / "accuracy_results").exists(), "nothing kept"
    assert json.loads(search_record_file(ranking, 0).read_text()) == stale, "the other benchmark's record is left alone"


def test_the_halving_accuracy_benchmark_runs_the_rankings_search():
    accuracy = load_config(CONFIGS / "bench_halving_cpu.yaml")
    ranking = load_config(CONFIGS / "bench_ranking_halving_val_cpu.yaml")
    assert search_settings(accuracy) == search_settings(ranking), "its searches are the ranking's"
    assert accuracy.bench.search_records == (Path("docs/results/ranking_halving_val_cpu"),)
    assert accuracy.data.val_data is not None and accuracy.data.val_data.synth.patients >= 40
    assert {"resnet18_fpn_gn", "resnet50_fpn_gn"} <= set(accuracy.bench.arms) and accuracy.bench.resnet50_seeds == 3
