"""The search end to end under torchrun: two data-parallel CPU processes (gloo) end with the same
supernet weights and architecture weights, and rank 0 alone writes the genotype and logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fsd.data.synth import generate_dataset
from fsd.models import load_genotype

pytestmark = pytest.mark.slow

TORCHRUN = Path(sys.executable).with_name("torchrun")


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed")
def test_two_process_search_ends_with_identical_weights_and_alphas(tmp_path: Path):
    generate_dataset(tmp_path / "data", patients=6, size=128, seed=4, type_all=True, progress=False)
    config = {
        "name": "tiny-ddp-search",
        "seed": 3,
        "task": "binary",
        "data": {"root": str(tmp_path / "data"), "cache": True},
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
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(config))
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
