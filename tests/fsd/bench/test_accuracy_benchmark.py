"""The accuracy benchmark end to end at toy scale: cells per arm and seed on a separate test set,
resumable (finished cells are skipped), and a report with intervals, claims and figures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from bench_fixtures import toy_config

from fsd.cli.bench.accuracy import ARMS, arm_seeds, run_accuracy_benchmark
from fsd.cli.bench.accuracy_report import summarize
from fsd.errors import FsdError
from fsd.eval.outcomes import Outcomes

pytestmark = pytest.mark.slow

def test_cells_report_and_resume(tmp_path: Path):
    config = toy_config(tmp_path)
    arms = ["fsd", "random", "types_graph_off", "types_graph_on", "types_graph_no_position"]
    files = run_accuracy_benchmark(config, tmp_path / "runs", tmp_path / "results", arms, device="cpu", progress=False)
    # seed by seed across the arms: a benchmark stopped early has every arm at its first seeds
    assert [f.stem for f in files] == [
        "fsd-seed0", "random-seed0", "types_graph_off-seed0", "types_graph_on-seed0", "types_graph_no_position-seed0", "random-seed1"
    ]
    assert arm_seeds(ARMS["random"], config) == [0, 1] and arm_seeds(ARMS["resnet50_fpn"], config) == [0]
    record = json.loads(files[0].read_text())
    assert record["test_set"]["description"].startswith("every key slice of") and record["test_set"]["lesions"] >= 4
    assert record["command"] and record["config"]["seed"] == 0 and record["parameters"] > 0
    assert record["data"]["train"]["synthetic"]["seed"] == 3 and record["data"]["test"]["synthetic"]["patients"] == 4
    assert len(record["data"]["test"]["dl_info_sha256"]) == 64
    assert record["val_before_recalibration"] is not None and "froc_mean_0.5_4" in record["val"]
    outcomes = Outcomes.load(files[0].with_suffix(".npz"))
    assert outcomes.max_fp_per_image() >= 16, "enough candidates survive for a FROC up to 16 FPs per image"
    assert (tmp_path / "results" / "searches" / "seed0.json").is_file()
    types = json.loads(next(f for f in files if f.stem == "types_graph_on-seed0").read_text())
    assert types["task"] == "types" and types["graph"] and len(types["confusion_matrix"]) == 8
    assert types["config"]["model"]["graph"]["position"] is True
    assert set(types["test_outcomes"]["type_recall"]) == {"bone", "abdomen", "mediastinum", "liver", "lung", "kidney", "soft_tissue", "pelvis"}
    assert types["test"]["slice_position_mae"] is not None
    no_position = json.loads(next(f for f in files if f.stem == "types_graph_no_position-seed0").read_text())
    assert no_position["config"]["model"]["graph"]["position"] is False
    stamps = {f: f.stat().st_mtime_ns for f in files}
    again = run_accuracy_benchmark(config, tmp_path / "runs", tmp_path / "results", arms, device="cpu", progress=False)
    assert again == files and all(f.stat().st_mtime_ns == stamps[f] for f in files), "finished cells are skipped"

    # a finished cell measured with other settings is refused, never mixed into the table
    other_recipe = config.model_copy(update={"train": config.train.model_copy(update={"lr": config.train.lr * 2})})
    with pytest.raises(FsdError, match=r"fsd-seed0\.json was measured with other settings than the config's \(train\.lr differ\)"):
        run_accuracy_benchmark(other_recipe, tmp_path / "runs", tmp_path / "results", ["fsd"], device="cpu", progress=False)
    # the bench's bookkeeping is not what a cell measured, nor the search what an arm that does
    # not search measured; the search is what a searched arm measured
    other_search = config.model_copy(
        update={"bench": config.bench.model_copy(update={"bootstrap": 500}), "search": config.search.model_copy(update={"epochs": 3})}
    )
    random_files = [f for f in files if f.stem.startswith("random-")]
    assert run_accuracy_benchmark(other_search, tmp_path / "runs", tmp_path / "results", ["random"], device="cpu", progress=False) == random_files
    with pytest.raises(FsdError, match=r"\(search\.epochs differ\)"):
        run_accuracy_benchmark(other_search, tmp_path / "runs", tmp_path / "results", ["fsd"], device="cpu", progress=False)
    other_space = config.search.space.model_copy(update={"backbone_ops": tuple(reversed(config.search.space.backbone_ops))})
    with pytest.raises(FsdError, match=r"random-seed\d\.json .*\(architecture differ\)"):
        run_accuracy_benchmark(config.model_copy(update={"search": config.search.model_copy(update={"space": other_space})}), tmp_path / "runs", tmp_path / "results", ["random"], device="cpu", progress=False)
    assert all(f.stat().st_mtime_ns == stamps[f] for f in files), "a refused cell is left as it was"

    markdown = summarize(tmp_path / "results", replicates=100, command="fsd bench accuracy --config toy.yaml")
    assert "| FSD, searched (SN) | 1 |" in markdown and "random architectures (SN)" in markdown
    assert "Multi-type task." in markdown and "Confusion matrix" in markdown and "Recall of each type" in markdown
    assert "Searched FSD at least 3 points sens@4 above the mean random architecture" in markdown
    assert "| FSD multi-type, graph on without position | FSD multi-type, graph on |" in markdown  # the ablation's paired row
    for claim in (
        "Graph on at least +10% relative mAP50 over types",
        "Type accuracy of found lesions at least 90%",
        "Recall of every type at least 70%",
        "Detection sens@4 with the graph not lower than without it",
    ):
        assert claim in markdown, claim
    claims = [line for line in markdown.splitlines() if line.startswith("- ") and ("**holds" in line or "**does not hold" in line)]
    assert len(claims) == 5
    assert "Command: `fsd bench accuracy --config toy.yaml`" in markdown
    for name in ("accuracy.md", "accuracy.json", "froc_bands.png", "differences.png"):
        assert (tmp_path / "results" / name).stat().st_size > 0, name
    # a partial table says how far it got, and its verdicts say they are provisional
    planned = {"fsd": 3, "random": 2, "types_graph_off": 1, "types_graph_on": 2, "types_graph_no_position": 1}
    partial = summarize(tmp_path / "results", replicates=100, planned=planned)
    assert "Progress: 6 of 9 planned cells finished (missing: fsd 1 of 3, types_graph_on 1 of 2)" in partial
    provisional = [line for line in partial.splitlines() if line.startswith("- ") and "so far** (provisional" in line]
    assert len(provisional) == 5
    assert "cells finished fsd 1 of 3)" in provisional[0] and all("types_graph_on 1 of 2" in line for line in provisional[1:])
    estimates = json.loads((tmp_path / "results" / "accuracy.json").read_text())["estimates"]
    low, high = estimates["fsd"]["sens@4"]["ci"]
    assert low <= estimates["fsd"]["sens@4"]["mean"] <= high

    # on a new machine the run folders are gone: the committed search record serves every searched
    # arm, whichever arm asks first (the search runs with the bench's config, not an arm's)
    shutil.rmtree(tmp_path / "runs")
    [attached_file] = run_accuracy_benchmark(config, tmp_path / "runs", tmp_path / "results", ["types_graph_attached"], device="cpu", progress=False)
    assert not (tmp_path / "runs" / "search").exists(), "nothing was searched again"
    attached = json.loads(attached_file.read_text())
    assert attached["architecture"] == record["architecture"] and attached["config"]["model"]["graph"]["detach_position"] is False
