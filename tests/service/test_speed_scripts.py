"""The speed scripts of docs/benchmarks.md on the test model, briefly: scripts/model_threads.py
(the model's threads used four ways) and scripts/server_vs_bare.py (the server against the bare
model in one run) report what the tables are made of, and name the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.mark.slow
def test_model_threads_reports_every_way_with_the_cpu(model_dir, synth_series, tmp_path):
    report_path = tmp_path / "threads.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "model_threads.py"), "--model", str(model_dir), "--batch", "2",
         "--seconds", "0.5", "--rounds", "1", "--json", str(report_path), "--files", *map(str, synth_series[:3])],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(report_path.read_text())
    assert list(report["ways"]) == ["threads", "threads-passive", "one-thread", "workers"]
    for way in report["ways"].values():
        assert len(way["images_per_s"]) == 1 and way["images_per_s"][0] > 0 and way["median"] > 0
        assert "torch kernels" in way["cpu"] and "core(s)" in way["cpu"]
    assert "1 torch thread(s)" in report["ways"]["one-thread"]["cpu"]
    assert "1 torch thread(s)" in report["ways"]["workers"]["cpu"]


@pytest.mark.slow
def test_server_vs_bare_reports_the_ratio_in_one_run(model_dir, synth_series, tmp_path):
    report_path = tmp_path / "server_vs_bare.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "server_vs_bare.py"), "--model", str(model_dir), "--batches", "1,2",
         "--bare-seconds", "0.5", "--clients", "2", "--duration", "2", "--json", str(report_path),
         "--files", *map(str, synth_series[:3])],
        env={key: value for key, value in os.environ.items() if not key.startswith("FSD_")},
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(report_path.read_text())
    bare = report["bare_images_per_s"]
    assert set(bare["mean"]) == {"1", "2"} and bare["best_batch"] in (1, 2)
    assert report["server"]["requests_ok"] > 0 and report["server"]["requests_failed"] == 0
    assert report["ratio_to_best_bare"] == pytest.approx(report["server_slices_per_s"] / bare["mean"][str(bare["best_batch"])], abs=2e-3)
    assert "model worker(s) on" in report["server"]["server_log_cpu"] and "torch kernels" in report["cpu"]
