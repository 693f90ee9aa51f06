"""The offline pipeline through the `fsd` command on a tiny synthetic set:
data synth -> search -> train -> evaluate -> export -> predict (DICOM and PNG)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fsd.config import FsdConfig
from fsd.engine.datasets import build_dataset
from fsd.models import load_genotype

pytestmark = pytest.mark.slow

TINY = {
    "name": "tiny-pipeline",
    "seed": 1,
    "task": "types",
    "preprocess": {"spacing_mm": 2.0, "max_size": 96},
    "model": {
        "norm": "sn",
        "fpn_channels": 16,
        "rpn": {"pre_nms_top_n_train": 100, "post_nms_top_n_train": 50, "pre_nms_top_n_test": 50, "post_nms_top_n_test": 20},
        "roi": {"representation": 32, "batch_size_per_image": 16, "score_thresh": 0.0},
        "graph": {"enabled": True, "hidden": 16},
    },
    "search": {
        "epochs": 2,
        "warmup_epochs": 1,
        "max_iters_per_epoch": 2,
        "partial_channels": 2,
        "cost_weight": 0.1,
        "space": {
            "stem_channels": 8,
            "stages": [{"width": 8, "blocks": 1}, {"width": 16, "blocks": 1}, {"width": 16, "blocks": 1}, {"width": 24, "blocks": 1}],
            "backbone_ops": ["conv_3x3", "sep_conv_3x3", "ir_k3_e3", "skip"],
            "head_ops": ["conv_3x3", "skip", "zero"],
            "head_nodes": 2,
            "head_channels": 8,
        },
    },
    "train": {"epochs": 1, "max_iters_per_epoch": 3, "batch_size": 1, "warmup_iters": 1, "checkpoint_every_iters": 2},
    "eval": {"batch_size": 2},
}


def fsd(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "fsd", *args], capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr[-4000:]
    return result


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pipeline")
    fsd("data", "synth", "--out", str(root / "data"), "--patients", "6", "--size", "128", "--seed", "2", "--dicom", "--type-all", "--no-progress")
    config = dict(TINY, data={"root": str(root / "data")})
    (root / "tiny.yaml").write_text(yaml.safe_dump(config))
    return root


def test_synthetic_data_reads_back_with_boxes_inside_and_types_in_range(workspace: Path):
    for split in ("train", "val", "test"):
        dataset = build_dataset(FsdConfig.model_validate({"task": "types", "data": {"root": workspace / "data"}}), split)
        assert len(dataset) > 0
        for index in range(len(dataset)):
            image, target = dataset[index]
            boxes = target["boxes"]
            assert bool((boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all())
            assert bool((boxes[:, 2] <= image.shape[2]).all() and (boxes[:, 3] <= image.shape[1]).all())
            assert bool(((target["labels"] >= 1) & (target["labels"] <= 8)).all())


def test_search_train_evaluate_export_predict(workspace: Path):
    config = str(workspace / "tiny.yaml")
    search_dir, train_dir, export_dir = workspace / "search", workspace / "train", workspace / "export"

    fsd("search", "--config", config, "--out", str(search_dir), "--device", "cpu")
    genotype = load_genotype(search_dir / "genotype.json")
    assert genotype.search["epochs"] == 2 and len(genotype.backbone_ops) == 4
    alphas = [json.loads(line) for line in (search_dir / "alphas.jsonl").read_text().splitlines()]
    assert len(alphas) == 2 and len(alphas[-1]["backbone"]) == 4 and len(alphas[-1]["head"]) == 3
    assert (search_dir / "alphas.png").stat().st_size > 0

    fsd("train", "--config", config, "--genotype", str(search_dir / "genotype.json"), "--out", str(train_dir), "--device", "cpu")
    assert (train_dir / "last.pt").is_file() and (train_dir / "training.png").is_file()

    evaluated = fsd("evaluate", "--model", str(train_dir / "last.pt"), "--data", str(workspace / "data"), "--split", "test", "--device", "cpu")
    report = json.loads((train_dir / "report.json").read_text())
    assert set(report["froc"]) == {"0.5", "1", "2", "4", "8", "16"} and "per_type_AP" in report
    assert "sens@4" in evaluated.stdout and (train_dir / "froc.png").is_file()

    fsd("export", "--checkpoint", str(train_dir / "last.pt"), "--out", str(export_dir))
    card = json.loads((export_dir / "model.json").read_text())
    assert card["metrics"]["froc"] == report["froc"]
    assert card["architecture"]["genotype"] == genotype.to_dict()

    exported = fsd("evaluate", "--model", str(export_dir), "--data", str(workspace / "data"), "--split", "test", "--device", "cpu", "--out", str(workspace / "eval_export"))
    assert "sens@4" in exported.stdout
    assert json.loads((workspace / "eval_export" / "report.json").read_text())["froc"] == report["froc"]

    series = sorted((workspace / "data" / "dicom").iterdir())[0]
    dicoms = sorted(series.glob("*.dcm"))[:5]
    fsd("predict", "--model", str(export_dir), "--out", str(workspace / "pred_dicom"), "--device", "cpu", *map(str, dicoms))
    predictions = json.loads((workspace / "pred_dicom" / "predictions.json").read_text())
    assert len(predictions["results"]) == 5
    assert all(Path(r["overlay_png"]).is_file() for r in predictions["results"])
    assert max(r["context_slices"] for r in predictions["results"]) > 1

    png = sorted((workspace / "data" / "Images_png" / series.name).glob("*.png"))[2]
    fsd("predict", "--model", str(export_dir), "--out", str(workspace / "pred_png"), "--device", "cpu", str(png))
    png_result = json.loads((workspace / "pred_png" / "predictions.json").read_text())["results"][0]
    dicom_twin = next(r for r in predictions["results"] if Path(r["source"]).stem == png.stem)
    # the same slice through the PNG and the DICOM route gives the same detections
    assert [d["box_px"] for d in png_result["detections"]] == [d["box_px"] for d in dicom_twin["detections"]]


def test_cli_errors_are_one_line_and_exit_2(workspace: Path, tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: -1\n")
    result = fsd("train", "--config", str(bad), "--baseline", "resnet18_fpn", "--out", str(tmp_path / "x"), check=False)
    assert result.returncode == 2 and "train.lr" in result.stderr and "Traceback" not in result.stderr
    result = fsd("evaluate", "--model", str(tmp_path / "missing.pt"), "--data", str(workspace / "data"), check=False)
    assert result.returncode == 2 and "checkpoint not found" in result.stderr
    result = fsd("predict", "--model", str(tmp_path), str(tmp_path / "nope.dcm"), check=False)
    assert result.returncode == 2 and "not found" in result.stderr
    result = fsd("train", "--config", str(workspace / "tiny.yaml"), "--baseline", "vgg16", "--out", str(tmp_path / "y"), check=False)
    assert result.returncode == 2 and "unknown baseline" in result.stderr
