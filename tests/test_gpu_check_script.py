"""scripts/gpu_check.sh, the one prepared GPU run, works end to end (its CPU mode: tiny sizes, the
same steps: speed benchmark with profile and baseline, the server under load, the summary)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_the_gpu_script_runs_every_step_and_writes_its_summary(tmp_path: Path):
    out = tmp_path / "out"
    env = {
        **os.environ,
        "GPU_CHECK_CPU": "1",
        "PYTHON": sys.executable,
        "WHEELS": str(tmp_path / "no-wheels"),
        "MODEL_DIR": str(tmp_path / "no-export"),
    }
    result = subprocess.run([str(ROOT / "scripts" / "gpu_check.sh"), str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = (out / "gpu_check.md").read_text()
    assert "| FSD | torchscript | fp32 | 2 |" in summary and "| R50-FPN (torchvision) | eager | fp32 | 1 |" in summary
    assert "normalization statistics" in summary and "RoI align" in summary
    for slices in (1, 3):
        report = json.loads((out / f"loadtest_{slices}slice.json").read_text())
        assert report["requests_ok"] > 0 and report["requests_failed"] == 0 and report["requests_lost"] == 0
    speed = json.loads((out / "speed_demo" / "speed.json").read_text())
    assert speed["profile"] and all(stages["total"] > 0 for stages in speed["profile"].values())
    assert json.loads((out / "environment.json").read_text())["torch"]
