"""Training end to end at small scale: a killed run resumes to the same weights and log, and two
data-parallel processes (torchrun, gloo) end with identical weights."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from fsd.artifacts import load_checkpoint
from fsd.config import load_config
from fsd.data.synth import generate_dataset
from fsd.engine.metrics_log import read_log
from fsd.engine.run_directory import RunDirectoryError
from fsd.engine.trainer import train
from fsd.models import architecture_record
from fsd.models.genotype import make_genotype

pytestmark = pytest.mark.slow

GENOTYPE = make_genotype(8, [(8, ["ir_k3_e3"]), (16, ["sep_conv_3x3"]), (16, ["conv_3x3"]), (24, ["skip"])], 8, ["conv_3x3", "skip", "sep_conv_3x3"])


@pytest.fixture(scope="module")
def run_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("training")
    generate_dataset(root / "data", patients=5, size=128, seed=11, type_all=True, progress=False)
    config = {
        "name": "tiny",
        "seed": 5,
        "task": "binary",
        "data": {"root": str(root / "data"), "cache": True},
        "preprocess": {"spacing_mm": 2.0, "max_size": 96},
        "model": {
            "norm": "sn",
            "fpn_channels": 16,
            "rpn": {"pre_nms_top_n_train": 100, "post_nms_top_n_train": 50, "pre_nms_top_n_test": 50, "post_nms_top_n_test": 20},
            "roi": {"representation": 32, "batch_size_per_image": 16},
        },
        "train": {"epochs": 3, "batch_size": 1, "max_iters_per_epoch": 3, "checkpoint_every_iters": 1, "warmup_iters": 2, "eval_every_epochs": 3, "lr": 0.01},
        "eval": {"batch_size": 2},
    }
    config_path = root / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(config))
    genotype_path = GENOTYPE.save(root / "genotype.json")
    return config_path, genotype_path


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).model


def _train_records(run: Path) -> list[tuple[int, float]]:
    return [(r["iteration"], r["loss"]) for r in read_log(run / "metrics.jsonl") if r["type"] == "train"]


def _cli(config: Path, genotype: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "fsd", "train", "--config", str(config), "--genotype", str(genotype), "--out", str(out), "--device", "cpu", *extra]


def test_killed_run_resumes_to_the_uninterrupted_result(run_files: tuple[Path, Path], tmp_path: Path):
    config_path, genotype_path = run_files
    config = load_config(config_path)
    architecture = architecture_record(genotype=GENOTYPE)
    reference = train(config, architecture, tmp_path / "reference", device="cpu", progress=False)
    assert reference.iterations == 9

    killed = tmp_path / "killed"
    process = subprocess.Popen(_cli(config_path, genotype_path, killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (killed / "last.pt").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    interrupted_at = load_checkpoint(killed / "last.pt").position.iteration
    assert 1 <= interrupted_at < 9

    with pytest.raises(RunDirectoryError, match="--resume"):
        train(config, architecture, killed, device="cpu", progress=False)
    resumed = train(config, architecture, killed, resume=True, device="cpu", progress=False)
    assert resumed.iterations == 9
    expected, actual = _weights(tmp_path / "reference" / "last.pt"), _weights(killed / "last.pt")
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    assert _train_records(killed) == _train_records(tmp_path / "reference")
    assert (killed / "training.png").stat().st_size > 0


def test_resume_without_checkpoint_and_bad_genotype_fail_clearly(run_files: tuple[Path, Path], tmp_path: Path):
    config_path, genotype_path = run_files
    result = subprocess.run(_cli(config_path, genotype_path, tmp_path / "new", "--resume"), capture_output=True, text=True)
    assert result.returncode == 2 and "no checkpoint to resume from" in result.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "fsd-genotype", "version": 1}))
    result = subprocess.run(_cli(config_path, bad, tmp_path / "other"), capture_output=True, text=True)
    assert result.returncode == 2 and "backbone" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.skipif(shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists(), reason="torchrun not installed")
def test_two_process_data_parallel_training_ends_with_identical_weights(run_files: tuple[Path, Path], tmp_path: Path):
    config_path, genotype_path = run_files
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    out = tmp_path / "ddp"
    command = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "fsd", "train", "--config", str(config_path),
               "--genotype", str(genotype_path), "--out", str(out), "--device", "cpu", "--set", "train.epochs=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2
    checksums = summary["rank_weight_checksums"]
    assert len(checksums) == 2 and checksums[0] == checksums[1]
    state = load_checkpoint(out / "last.pt")
    assert state.position.iteration >= 1 and summary["iterations"] == state.position.iteration
