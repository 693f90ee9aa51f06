"""The search-ranking measurement: Kendall's tau-b and its interval, and `fsd bench ranking` end to
end at toy scale (stand-alone trainings scored on a validation set of its own patients, the
supernet's scores, resumable result files, the report)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from bench_fixtures import toy_config
from scipy import stats

from fsd.cli.bench.accuracy import RANDOM_SEED_BASE
from fsd.cli.bench.rank_correlation import kendall_tau_b, kendall_tau_interval
from fsd.cli.bench.ranking import reusable_result, run_ranking_benchmark, score_with_supernet
from fsd.cli.bench.ranking_report import reference_rankings, summarize_ranking, top_of_space_claim
from fsd.cli.bench.searches import recorded_genotype, search_config, search_record_file
from fsd.config import FsdConfig, parse_config
from fsd.data.dl_info import read_dl_info
from fsd.data.splits import task_records
from fsd.engine.metrics_log import read_log
from fsd.errors import ConfigError, FsdError
from fsd.models import load_genotype
from fsd.models.genotype import make_genotype
from search.candidate_runs import validation_at
from search.loop import random_genotype, split_weight_and_arch_sets, supernet_proxy


def test_kendall_tau_b_agrees_with_scipy_with_and_without_ties():
    rng = np.random.default_rng(0)
    for _ in range(25):
        x = rng.integers(0, 5, 12)
        y = x + rng.integers(-2, 3, 12)
        assert kendall_tau_b(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)
    continuous = rng.normal(size=15)
    assert kendall_tau_b(continuous, -continuous ** 3) == pytest.approx(-1.0)
    assert kendall_tau_b([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert math.isnan(kendall_tau_b([1, 1, 1], [1, 2, 3])), "no untied pair: no ranking to compare"
    with pytest.raises(ValueError, match="equally long"):
        kendall_tau_b([1, 2], [1, 2, 3])


def test_tau_interval_brackets_the_estimate_and_narrows_with_more_architectures():
    rng = np.random.default_rng(1)
    widths = []
    for n in (12, 80):
        x = rng.normal(size=n)
        y = x + rng.normal(scale=1.0, size=n)
        low, high = kendall_tau_interval(x, y, replicates=1000)
        assert -1.0 <= low <= kendall_tau_b(x, y) <= high <= 1.0
        widths.append(high - low)
    assert widths[1] < widths[0] / 1.8, widths


def ranking_config(root: Path, extra: list[Path]) -> FsdConfig:
    document = toy_config(root).model_dump()
    document["data"]["val_data"] = {"root": root / "val", "synth": {"patients": 4, "size": 128, "seed": 77, "type_all": True}}
    document["bench"]["ranking"] = {"random_genotypes": 2, "genotypes": extra, "search_seeds": [0], "train_seeds": [0], "proxy_metrics": ["froc", "loss"]}
    return FsdConfig.model_validate(document)


@pytest.mark.slow
def test_ranking_benchmark_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    mine = make_genotype(8, [(8, ["conv_3x3"]), (16, ["ir_k3_e3"]), (16, ["conv_3x3"]), (24, ["ir_k3_e3"])], 8, ["conv_3x3", "skip", "conv_3x3"]).save(
        tmp_path / "all_conv.json"
    )
    config = ranking_config(tmp_path, [mine])
    results = tmp_path / "results"
    files = run_ranking_benchmark(config, tmp_path / "runs", results, device="cpu", progress=False)
    names = sorted(f.name for f in files)
    assert names == sorted(["search-seed0.json", "search-seed0.froc.json", "random-0-seed0.json", "random-1-seed0.json", "all_conv-seed0.json", "searched-seed0-seed0.json"])

    # every stand-alone architecture is chosen and scored on the validation set of its own patients
    val_lesions = sum(len(r.lesions) for r in task_records(read_dl_info(tmp_path / "val" / "DL_info.csv"), "binary"))
    record = json.loads((results / "architectures" / "all_conv-seed0.json").read_text())
    assert record["val"]["num_lesions"] == val_lesions and record["data"]["val"]["synthetic"]["seed"] == 77
    assert record["test"]["num_lesions"] > 0 and record["parameters"] > 0 and record["command"]
    assert list(record["val_history"]) == ["1"], "the validation after every validated epoch is kept"
    assert load_genotype(mine).to_dict()["backbone"] == record["genotype"]["backbone"]

    # the proxy is the selection's own scorer: it gives the searched genotype the score the search logged
    proxy = json.loads((results / "proxy" / "search-seed0.json").read_text())
    assert set(proxy["scores"]) == {"random-0", "random-1", "all_conv", "searched-seed0"}
    searched = load_genotype(tmp_path / "runs" / "search" / "seed0" / "genotype.json")
    assert proxy["scores"]["searched-seed0"] == pytest.approx(searched.search["selection_score"], rel=1e-6)
    assert proxy["selection_metric"] == "loss" and proxy["selection_proxy"] is True
    # a further proxy scores the same architectures on the same supernet another way ("loss", the
    # selection's own, is not scored twice)
    froc = json.loads((results / "proxy" / "search-seed0.froc.json").read_text())
    assert froc["selection_metric"] == "froc" and froc["selection_proxy"] is False
    assert set(froc["scores"]) == set(proxy["scores"]) and all(0.0 <= v <= 1.0 for v in froc["scores"].values())

    stamps = {f: f.stat().st_mtime_ns for f in files}
    again = run_ranking_benchmark(config, tmp_path / "runs", results, device="cpu", progress=False)
    assert again == files and all(f.stat().st_mtime_ns == stamps[f] for f in files), "finished pieces are skipped"

    # on a new machine the run folders are gone: the committed search record stands in for the search
    shutil.rmtree(tmp_path / "runs")
    assert run_ranking_benchmark(config, tmp_path / "runs", results, device="cpu", progress=False) == files
    assert not (tmp_path / "runs" / "search").exists(), "nothing was searched again"
    record_file = search_record_file(results, 0)
    assert recorded_genotype(record_file, search_config(config, 0)) == searched
    other = config.model_copy(update={"search": config.search.model_copy(update={"epochs": 3})})
    assert recorded_genotype(record_file, search_config(other, 0)) is None, "a record of other search settings is not reused"
    assert recorded_genotype(record_file, search_config(config, 1)) is None, "nor one of another seed"
    # and where a search's supernet scores were never taken, its supernet stayed on the machine that
    # searched: the ranking warns, leaves them out and still judges the search's genotype
    parked = tmp_path / "parked_proxy"
    (results / "proxy").rename(parked)
    assert run_ranking_benchmark(config, tmp_path / "runs", results, device="cpu", progress=False) == [f for f in files if f.parent.name != "proxy"]
    assert "search seed 0's supernet" in capsys.readouterr().err
    without = summarize_ranking(results, "froc_mean_0.5_4", replicates=50)
    assert [line[:15] for line in without.splitlines() if "its genotype's test sens@4" in line] == ["- Search seed 0"]
    assert "No supernet scores for search seed(s) 0" in without
    parked.rename(results / "proxy")

    markdown = summarize_ranking(results, "froc_mean_0.5_4", replicates=200, command="fsd bench ranking --config toy.yaml")
    assert "Command: `fsd bench ranking --config toy.yaml`" in markdown
    assert "Search seed 0: Kendall tau of the selection's proxy (point estimate) at least 0.5" in markdown
    assert "Search seed 0: Kendall tau of a further proxy (FROC mean 0.5-4) (point estimate)" in markdown
    assert "| supernet 0 loss (selection's) | supernet 0 froc |" in markdown
    assert "| fewer parameters |" in markdown and "| stand-alone val score |" in markdown
    top_claims = [line for line in markdown.splitlines() if "its genotype's test sens@4" in line]
    assert len(top_claims) == 1 and top_claims[0].startswith("- Search seed 0:"), "one claim per search, not per proxy"
    for name in ("random-0", "random-1", "all_conv", "searched-seed0"):
        assert f"| {name} | 1 |" in markdown, name
    rankings = json.loads((results / "ranking.json").read_text())["rankings"]
    assert [(r["selection_metric"], r["selection_proxy"]) for r in rankings] == [("loss", True), ("froc", False)]
    ranking = rankings[0]
    assert ranking["architectures"] == 4 and 1 <= ranking["searched_val_rank"] <= 4
    # toy-scale training may leave every stand-alone score tied, where tau is not defined and says so
    if ranking["tau_val"] is None:
        assert "**cannot be measured**" in markdown
    else:
        low, high = ranking["tau_val_ci"]
        assert -1.0 <= low <= ranking["tau_val"] <= high <= 1.0
    assert (results / "ranking.png").stat().st_size > 0

    # a later ranking of another search (candidates scored by a short stand-alone training)
    # reuses every stand-alone result of the same architecture, seed and training settings
    document = config.model_dump()
    document["search"].update({"selection_metric": "short_training", "short_training_epochs": 1, "population": 2, "generations": 1})
    document["bench"]["ranking"].update({"reuse": [results], "proxy_metrics": ["loss"]})
    later_config = FsdConfig.model_validate(document)
    later = tmp_path / "later"
    run_ranking_benchmark(later_config, tmp_path / "later_runs", later, device="cpu", progress=False)
    for name in ("random-0", "random-1", "all_conv"):
        reused = json.loads((later / "architectures" / f"{name}-seed0.json").read_text())
        original = json.loads((results / "architectures" / f"{name}-seed0.json").read_text())
        assert reused["reused_from"] == str(results / "architectures" / f"{name}-seed0.json")
        assert reused["val"] == original["val"] and reused["test"] == original["test"]
        assert not (tmp_path / "later_runs" / "runs" / f"{name}-seed0").exists(), f"{name} was trained again"
    other_recipe = later_config.model_copy(update={"seed": 0, "train": later_config.train.model_copy(update={"lr": 0.5})})
    assert reusable_result(other_recipe, load_genotype(mine)) is None, "a result of another recipe is not reused"
    # a result written before a setting existed (here bench.search_records, at its default) is
    # still the same training: its recorded config takes the setting's default
    random_genotype_0 = random_genotype(later_config, RANDOM_SEED_BASE)
    older = tmp_path / "older"
    record = json.loads((results / "architectures" / "random-0-seed0.json").read_text())
    del record["config"]["bench"]["search_records"]
    (older / "architectures").mkdir(parents=True)
    (older / "architectures" / "random-0-seed0.json").write_text(json.dumps(record))
    seeded = later_config.model_copy(update={"seed": 0, "bench": later_config.bench.model_copy(update={"ranking": later_config.bench.ranking.model_copy(update={"reuse": (older,)})})})
    found = reusable_result(seeded, random_genotype_0)
    assert found is not None and found["reused_from"] == str(older / "architectures" / "random-0-seed0.json")
    record["config"]["train"]["no_such_setting"] = 1
    (older / "architectures" / "random-0-seed0.json").write_text(json.dumps(record))
    assert reusable_result(seeded, random_genotype_0) is None, "a recorded config that no longer validates is not reused"

    # the selection trained each candidate once into its own folder and kept the best score; the
    # ranking's short-training proxy is that same scorer and trains nothing it already trained
    run = tmp_path / "later_runs" / "search" / "seed0"
    found = load_genotype(run / "genotype.json")
    evaluated = read_log(run / "selection.jsonl")
    trained = {d.name: json.loads((d / "score.json").read_text())["score"] for d in (run / "candidates").iterdir()}
    assert {r["key"]: r["score"] for r in evaluated}.items() <= trained.items()
    budget = found.search["parameter_budget"]
    assert found.search["selection_score"] == trained[found.key] == max(r["score"] for r in evaluated if r["parameters"] <= budget)
    own = json.loads((later / "proxy" / "search-seed0.json").read_text())
    assert own["selection_metric"] == "short_training" and own["scores"]["searched-seed0"] == trained[found.key]
    ranked = {load_genotype(mine).key, found.key} | {random_genotype(later_config, RANDOM_SEED_BASE + k).key for k in range(2)}
    assert set(trained) == {r["key"] for r in evaluated} | ranked
    assert "| search 0 short_training (selection's) | supernet 0 loss |" in summarize_ranking(later, "froc_mean_0.5_4", replicates=50)
    # every candidate was validated on the architecture set (train-split patients), never on val or test
    _, arch_set = split_weight_and_arch_sets(search_config(later_config, 0))
    arch_lesions = sum(len(r.lesions) for r in arch_set.records)
    for folder in (run / "candidates").iterdir():
        validations = [r for r in read_log(folder / "metrics.jsonl") if r["type"] == "val"]
        assert validations and all(r["metrics"]["num_lesions"] == arch_lesions for r in validations)
    # a trained candidate's stored score is read, not trained again
    stored = run / "candidates" / found.key / "score.json"
    document = json.loads(stored.read_text())
    stored.write_text(json.dumps({**document, "score": 0.25}))
    assert supernet_proxy(run, torch.device("cpu")).score_genotype(found) == 0.25
    stored.write_text(json.dumps(document))
    # a candidate killed while validating (last epoch trained, no validation logged) trains again
    stored.unlink()
    log = stored.parent / "metrics.jsonl"
    log.write_text("".join(line for line in log.read_text().splitlines(keepends=True) if '"type": "val"' not in line))
    checkpoint_time = (stored.parent / "last.pt").stat().st_mtime_ns
    assert supernet_proxy(run, torch.device("cpu")).score_genotype(found) == json.loads(stored.read_text())["score"]
    assert (stored.parent / "last.pt").stat().st_mtime_ns != checkpoint_time and validation_at(stored.parent, 1) is not None
    # scores of one proxy are never relabelled as another's: the loss-proxy file is scored again
    architectures = {"all_conv": load_genotype(mine), "searched-seed0": found}
    rescored = json.loads(score_with_supernet(architectures, 0, "short_training", True, tmp_path / "later_runs", results, "cpu", False).read_text())
    assert rescored["selection_metric"] == "short_training" and set(rescored["scores"]) == set(architectures)
    assert rescored["scores"]["searched-seed0"] == trained[found.key]
    # a run folder searched with other settings is refused, not taken for this config's search
    with pytest.raises(FsdError, match="searched with other settings"):
        run_ranking_benchmark(config, tmp_path / "later_runs", tmp_path / "elsewhere", device="cpu", progress=False)


def test_a_genotype_outside_the_searched_space_is_refused(tmp_path: Path):
    foreign = make_genotype(8, [(8, ["sep_conv_3x3"]), (16, ["ir_k3_e3"]), (16, ["conv_3x3"]), (24, ["ir_k3_e3"])], 8, ["conv_3x3", "skip", "conv_3x3"]).save(
        tmp_path / "foreign.json"
    )
    config = ranking_config(tmp_path, [foreign])
    with pytest.raises(FsdError, match="foreign.json: not an architecture of the searched space .*sep_conv_3x3"):
        run_ranking_benchmark(config, tmp_path / "runs", tmp_path / "results", device="cpu", progress=False)


def test_a_validation_set_must_be_apart_from_training_and_test_data():
    base = {"data": {"root": "d", "synth": {"seed": 1}}, "bench": {"test_data": {"root": "t", "synth": {"seed": 5}}}}
    for val, reason in (
        ({"root": "v", "synth": {"seed": 5}}, "would be the test patients"),
        ({"root": "v", "synth": {"seed": 1}}, "would repeat training patients"),
        ({"root": "t"}, "is also the training data or bench.test_data"),
        ({"root": "d"}, "is also the training data or bench.test_data"),
    ):
        with pytest.raises(ConfigError, match=reason):
            parse_config({**base, "data": {**base["data"], "val_data": val}})
    assert parse_config({**base, "data": {**base["data"], "val_data": {"root": "v", "synth": {"seed": 7}}}}).data.val_data is not None


def test_reference_rankers_read_the_parameter_count_and_val_against_test():
    rows = [
        {
            "name": f"a{k}",
            "parameters": 1_000_000 + 10_000 * k,
            "val": 0.5 - 0.02 * k,
            "test sens@4": 0.6 - 0.02 * k - (0.05 if k == 0 else 0.0),
            # early in training the ranks are reversed
            "val history": {"8": 0.1 + 0.01 * k, "24": 0.5 - 0.02 * k},
        }
        for k in range(6)
    ]
    fewer, early, last, val = reference_rankings(rows, replicates=200)
    assert early["ranker"] == "val FROC after epoch 8 of 24 (same training)" and early["tau_val"] == pytest.approx(-1.0)
    assert last["ranker"] == "val FROC after epoch 24 of 24 (same training)" and last["tau_val"] == pytest.approx(1.0)
    assert fewer["ranker"] == "fewer parameters" and fewer["tau_val"] == pytest.approx(1.0), "fewer parameters ranks val exactly here"
    assert val["ranker"] == "stand-alone val score" and val["tau_val"] == pytest.approx(1.0)
    assert val["tau_test"] == pytest.approx(kendall_tau_b([r["val"] for r in rows], [r["test sens@4"] for r in rows]))
    assert val["tau_test"] < 1.0 and fewer["architectures"] == 6


def test_the_top_of_space_claim_needs_the_best_random_and_three_points_of_the_best_known():
    def claim(own: float, best_random: float = 0.487, best: float = 0.521, provisional: bool = False) -> str | None:
        ranking = {"search_seed": 1, "searched_test_sens@4": own, "best_random_test_sens@4": best_random, "best_known_test_sens@4": best}
        return top_of_space_claim(ranking, provisional)

    assert claim(0.503) == (
        "- Search seed 1: its genotype's test sens@4 (50.3) at least the best random architecture's (48.7) "
        "and within 3 points of the best known (52.1): **holds**."
    )
    assert claim(0.469) is not None and claim(0.469).endswith("**does not hold**."), "under the best random"
    assert claim(0.49, best_random=0.45, best=0.53).endswith("**does not hold**."), "more than 3 points under the best known"
    assert claim(0.521).endswith("**holds**.") and claim(0.487, best=0.517).endswith("**holds**."), "the bounds count"
    assert "**holds so far** (provisional" in claim(0.503, provisional=True)
    assert claim(None) is None, "no claim before the searched genotype has trained"  # type: ignore[arg-type]
