"""The search end to end: a killed search resumes to exactly the uninterrupted result, and under
torchrun two data-parallel CPU processes (gloo) end with the same supernet weights and
architecture weights, rank 0 alone writing the genotype and logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from fsd.artifacts import load_checkpoint
from fsd.config import load_config
from fsd.data.synth import generate_dataset
from fsd.engine.datasets import build_dataset
from fsd.engine.metrics_log import read_log
from fsd.errors import ConfigError, FsdError
from fsd.models import load_genotype
from fsd.models.detector_config import DetectorConfig
from search.loop import search, split_weight_and_arch_sets
from search.selection import random_parameter_quantile

pytestmark = pytest.mark.slow

TORCHRUN = Path(sys.executable).with_name("torchrun")


def tiny_search_config(data: Path) -> dict[str, Any]:
    return {
        "name": "tiny-search",
        "seed": 3,
        "task": "binary",
        "data": {"root": str(data), "cache": True},
        "preprocess": {"spacing_mm": 2.0, "max_size": 96},
        "model": {
            "fpn_channels": 16,
            "rpn": {"pre_nms_top_n_train": 100, "post_nms_top_n_train": 50, "pre_nms_top_n_test": 50, "post_nms_top_n_test": 20},
            "roi": {"representation": 32, "batch_size_per_image": 16},
        },
        "search": {
            "norm": "sn",
            "epochs": 2,
            "warmup_epochs": 1,
            "batch_size": 1,
            "max_iters_per_epoch": 2,
            "partial_channels": 2,
            "space": {
                "stem_channels": 8,
                "stages": [{"width": 8, "blocks": 1}, {"width": 16, "blocks": 1}, {"width": 16, "blocks": 1}, {"width": 24, "blocks": 1}],
                "backbone_ops": ["conv_3x3", "ir_k3_e3", "skip"],
                "head_ops": ["conv_3x3", "skip", "zero"],
                "head_nodes": 2,
                "head_channels": 8,
            },
        },
    }


@pytest.fixture(scope="module")
def search_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("search_data")
    generate_dataset(root, patients=6, size=128, seed=4, type_all=True, progress=False)
    return root


def test_killed_search_resumes_to_the_uninterrupted_alphas_and_weights(search_data: Path, tmp_path: Path):
    config = tiny_search_config(search_data)
    config["search"].update({"epochs": 3, "max_iters_per_epoch": 2, "checkpoint_every_iters": 1})
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(config))
    reference = search(load_config(config_path), tmp_path / "reference", device="cpu", progress=False)

    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "fsd", "search", "--config", str(config_path), "--out", str(killed), "--device", "cpu"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    # past the warm-up epoch: architecture steps have drawn architecture-set batches
    while len(read_log(killed / "search.jsonl")) < 4 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the search finished before it could be killed"
    interrupted_at = load_checkpoint(killed / "search_last.pt", kind="search").position.iteration
    assert 3 <= interrupted_at < 6

    resumed = search(load_config(config_path), killed, resume=True, device="cpu", progress=False)
    assert resumed.genotype.to_dict()["backbone"] == reference.genotype.to_dict()["backbone"]
    expected, actual = (load_checkpoint(run / "search_last.pt").model for run in (tmp_path / "reference", killed))
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    alphas = [[(r["iteration"], r["backbone"], r["head"]) for r in read_log(run / "alphas.jsonl")] for run in (tmp_path / "reference", killed)]
    assert alphas[0] == alphas[1] and len(alphas[0]) == 3
    last = read_log(killed / "alphas.jsonl")[-1]
    assert len(last["entropy"]["backbone"]) == 4 and len(last["margin"]["head"]) == 3
    assert all(0.0 <= value <= 1.0 for value in last["entropy"]["backbone"] + last["entropy"]["head"])
    assert last["chosen"]["backbone"] == resumed.genotype.search["alpha_derived"]["backbone"]
    # the evolutionary selection scored candidates, logged each, and kept the best within the budget
    evaluated = read_log(killed / "selection.jsonl")
    chosen = [r for r in evaluated if r["chosen"]]
    assert len(chosen) == 1 and chosen[0]["score"] == max(r["score"] for r in evaluated if r["parameters"] <= resumed.genotype.search["parameter_budget"])
    assert chosen[0]["backbone"] == [op for stage in resumed.genotype.stages for op in stage.ops]
    assert resumed.genotype.search["parameters"] <= resumed.genotype.search["parameter_budget"]


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed")
def test_two_process_search_ends_with_identical_weights_and_alphas(search_data: Path, tmp_path: Path):
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(tiny_search_config(search_data)))
    out = tmp_path / "search"
    command = [str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "fsd", "search", "--config", str(config_path), "--out", str(out), "--device", "cpu"]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    summary = json.loads((out / "search_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["iterations"] == 4
    checksums = summary["rank_checksums"]
    assert len(checksums) == 2 and checksums[0] == checksums[1]
    genotype = load_genotype(out / "genotype.json")
    assert genotype.to_dict()["backbone"] == summary["genotype"]["backbone"]
    iterations = [json.loads(line)["iteration"] for line in (out / "search.jsonl").read_text().splitlines() if json.loads(line).get("type") == "search"]
    assert iterations == [1, 2, 3, 4], "rank 0 alone logs, once per iteration"


def tiny_halving_config(data: Path, **search: Any) -> dict[str, Any]:
    """The tiny search choosing by successive halving over 3 candidates at epochs 1 and 2."""
    config = tiny_search_config(data)
    config["search"].update({"selection": "halving", "population": 3, "halving_rungs": [1, 2], **search})
    config["train"] = {"epochs": 2, "batch_size": 1, "max_iters_per_epoch": 2, "warmup_iters": 1, "recalibrate_batches": 2}
    config["eval"] = {"batch_size": 2}
    return config


def test_successive_halving_trains_the_better_half_on_and_chooses_on_the_architecture_set(search_data: Path, tmp_path: Path):
    config = tiny_halving_config(search_data)
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    result = search(load_config(config_path), run, device="cpu", progress=False)
    summary = json.loads((run / "search_summary.json").read_text())
    assert summary["selection_seconds"] > 0 and summary["supernet_seconds"] > 0, "the halving's trainings count in the search's time"
    assert summary["seconds"] == pytest.approx(summary["supernet_seconds"] + summary["selection_seconds"])

    logged = read_log(run / "selection.jsonl")
    assert len(logged) == 3 and all("1" in r["rung_scores"] for r in logged)
    # the better half (rounded up) at rung 1 goes on, ties broken by fewer parameters
    survivors = [r for r in logged if "2" in r["rung_scores"]]
    first_rung = sorted(logged, key=lambda r: (-r["rung_scores"]["1"], r["parameters"]))
    assert {r["key"] for r in survivors} == {r["key"] for r in first_rung[:2]}
    best = min(survivors, key=lambda r: (-r["rung_scores"]["2"], r["parameters"]))
    assert [r["key"] for r in logged if r["chosen"]] == [best["key"]] == [result.genotype.key]
    assert result.genotype.search["selection"] == "halving" and result.genotype.search["selection_score"] == best["rung_scores"]["2"]

    # every candidate validated at its rungs on the architecture set (train-split patients); a
    # survivor went on from its rung-1 checkpoint in the same run, only survivors finished the recipe
    _, arch_set = split_weight_and_arch_sets(load_config(config_path))
    lesions = sum(len(record.lesions) for record in arch_set.records)
    for record in logged:
        folder = run / "candidates" / record["key"]
        validations = [v for v in read_log(folder / "metrics.jsonl") if v["type"] == "val"]
        assert [v["epoch"] for v in validations] == [int(e) for e in record["rung_scores"]]
        assert all(v["metrics"]["num_lesions"] == lesions for v in validations)
        iterations = [r["iteration"] for r in read_log(folder / "metrics.jsonl") if r["type"] == "train"]
        assert iterations == list(range(1, len(iterations) + 1)) and len(iterations) == 2 * len(record["rung_scores"])
        assert (folder / "summary.json").is_file() == ("2" in record["rung_scores"])

    # the selection run again (a resumed search) trains nothing and chooses the same
    stamps = {path: path.stat().st_mtime_ns for path in (run / "candidates").rglob("last.pt")}
    again = search(load_config(config_path), run, resume=True, device="cpu", progress=False)
    assert again.genotype.key == result.genotype.key
    assert all(path.stat().st_mtime_ns == stamp for path, stamp in stamps.items())

    # on the train and val splits instead, the candidates train with `fsd train`'s data: the
    # run folder's candidates were trained on other data, so that folder is refused
    config["search"]["halving_data"] = "train_val"
    config_path.write_text(yaml.safe_dump(config))
    with pytest.raises(FsdError, match="other settings"):
        search(load_config(config_path), run, resume=True, device="cpu", progress=False)
    on_val = search(load_config(config_path), tmp_path / "on_val", device="cpu", progress=False)
    val_lesions = sum(len(record.lesions) for record in build_dataset(load_config(config_path), "val").records)
    assert on_val.genotype.search["halving_data"] == "train_val" and val_lesions != lesions
    for record in read_log(tmp_path / "on_val" / "selection.jsonl"):
        logged_run = read_log(tmp_path / "on_val" / "candidates" / record["key"] / "metrics.jsonl")
        validations = [v for v in logged_run if v["type"] == "val"]
        assert [v["epoch"] for v in validations] == [int(e) for e in record["rung_scores"]]
        assert all(v["metrics"]["num_lesions"] == val_lesions for v in validations)

    config["search"]["halving_rungs"] = [1, 3]
    config_path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="past train.epochs"):
        search(load_config(config_path), tmp_path / "too_long", device="cpu", progress=False)


def test_a_quantile_budget_keeps_every_candidate_under_that_quantile_of_random_genotypes(search_data: Path, tmp_path: Path):
    config = tiny_halving_config(search_data, parameter_budget="random_quantile", parameter_budget_quantile=0.25)
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(config))
    loaded = load_config(config_path)
    result = search(loaded, tmp_path / "run", device="cpu", progress=False)

    def quantile(q: float) -> float:
        return random_parameter_quantile(loaded.search.space, DetectorConfig.from_config(loaded), loaded.search.max_parameter_free_backbone, q)

    budget = result.genotype.search["parameter_budget"]
    assert budget == pytest.approx(quantile(0.25)) and budget < quantile(0.5), "a tighter budget than the default median"
    logged = read_log(tmp_path / "run" / "selection.jsonl")
    assert len(logged) == config["search"]["population"] and all(r["parameters"] <= budget for r in logged)
    assert result.genotype.search["parameters"] <= budget


def test_halving_scores_the_last_rung_over_several_training_seeds(search_data: Path, tmp_path: Path):
    config = tiny_halving_config(search_data, halving_final_seeds=2)
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    result = search(load_config(config_path), run, device="cpu", progress=False)

    logged = read_log(run / "selection.jsonl")
    finalists = [r for r in logged if "2" in r["rung_scores"]]
    assert len(finalists) == 2 and all("final_seed_scores" not in r for r in logged if r not in finalists)
    for record in finalists:
        own, further = run / "candidates" / record["key"], run / "candidates" / f"{record['key']}-seed1"
        # the last rung's score is the mean over the two trainings' validations at that epoch
        scores = [next(v["metrics"]["froc_mean_0.5_4"] for v in read_log(folder / "metrics.jsonl") if v["type"] == "val" and v["epoch"] == 2) for folder in (own, further)]
        assert record["final_seed_scores"] == pytest.approx(scores)
        assert record["rung_scores"]["2"] == pytest.approx(sum(scores) / 2)
        # the further training is another seed's (the search's seed + 1000): other first losses
        assert load_config(further / "config.yaml").seed == config["seed"] + 1000
        first_losses = [next(r["loss"] for r in read_log(folder / "metrics.jsonl") if r["type"] == "train") for folder in (own, further)]
        assert first_losses[0] != first_losses[1]
    assert not any((run / "candidates" / f"{r['key']}-seed1").exists() for r in logged if r not in finalists), "only the last rung's candidates train again"
    best = min(finalists, key=lambda r: (-r["rung_scores"]["2"], r["parameters"]))
    assert result.genotype.key == best["key"]
    # the genotype keeps the candidates the selection weighed (so committed search records do too)
    assert result.genotype.search["halving_final_seeds"] == 2 and result.genotype.search["candidates"] == logged
    assert load_genotype(run / "genotype.json").search["candidates"] == logged
