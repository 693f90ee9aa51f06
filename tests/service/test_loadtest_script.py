"""scripts/loadtest.py against a real uvicorn server: a short run loses and fails nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from service_helpers import API_KEY, live_server

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "loadtest.py"


@pytest.mark.slow
@pytest.mark.parametrize("route", ["detect", "studies"])
def test_short_load_run_reports_throughput_and_no_failures(make_app, synth_series, tmp_path, route):
    report_path = tmp_path / "report.json"
    with live_server(make_app(max_batch_slices=4, max_wait_ms=20)) as base:
        completed = subprocess.run(
            [sys.executable, str(SCRIPT), "--url", base, "--clients", "4", "--duration", "2",
             "--slices-per-request", "2", "--route", route, "--json", str(report_path),
             "--files", *[str(path) for path in synth_series]],
            env={**os.environ, "FSD_API_KEY": API_KEY},
            capture_output=True, text=True, timeout=120,
        )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = json.loads(report_path.read_text())
    assert report["requests_ok"] > 0 and report["requests_failed"] == 0 and report["requests_lost"] == 0
    assert report["requests_sent"] == report["requests_ok"]
    assert report["throughput_slices_per_s"] == pytest.approx(2 * report["throughput_rps"], rel=1e-2)
    latency = report["latency_ms"]
    assert 0 < latency["p50"] <= latency["p99"] <= latency["max"]
    assert report["model"] == {"name": "test", "version": "0"}
    steps = report["server_timing_ms_median"]
    assert set(steps) == {"decode", "preprocess", "queue_wait", "model", "response", "total"} and steps["model"] > 0


def test_wrong_key_fails_fast(make_app, synth_series):
    with live_server(make_app()) as base:
        completed = subprocess.run(
            [sys.executable, str(SCRIPT), "--url", base, "--duration", "1", "--files", str(synth_series[0])],
            env={**os.environ, "FSD_API_KEY": "not-the-key-0123456789"},
            capture_output=True, text=True, timeout=120,
        )
    assert completed.returncode != 0 and "check the API key" in completed.stderr
