"""scripts/dimse_loadtest.py against a real server with its DICOM node: 8 concurrent senders of
60-slice studies lose nothing and every study gets its SR, while malformed PDUs, an unknown AE
title and an oversized study are refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from service_helpers import API_KEY, live_server

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "dimse_loadtest.py"


@pytest.mark.slow
def test_eight_senders_of_sixty_slices_lose_nothing_under_abuse(make_app, tmp_path):
    app = make_app(
        dicom_enabled=True, dicom_port=0, dicom_allowed_calling_ae_titles=["LOADTEST"], max_files=100,
        max_batch_slices=8, dicom_timeout_s=20,
    )
    report_path = tmp_path / "report.json"
    with live_server(app) as base:
        port = app.state.dicom_node.port
        completed = subprocess.run(
            [sys.executable, str(SCRIPT), "--port", str(port), "--url", base, "--senders", "8", "--slices", "60",
             "--abuse", "--oversized", "120", "--timeout", "240", "--json", str(report_path)],
            env={"FSD_API_KEY": API_KEY, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=400,
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr
        report = json.loads(report_path.read_text())
        assert report["studies_lost"] == 0 and report["studies_with_sr"] == 8
        assert report["statuses"] == {"0000": 480}
        malformed = [key for key in report["abuse"] if key.startswith("malformed")]
        assert len(malformed) == 5 and all(key.endswith(("closed", "aborted (A-ABORT)")) for key in malformed), report["abuse"]
        assert "unknown AE title: refused" in report["abuse"]
        assert any(key.startswith("oversized study: refused") for key in report["abuse"])
        assert app.state.dicom_node.collector.pending_bytes == 0
