"""scripts/dimse_loadtest.py against a real server with its DICOM node: concurrent senders lose
nothing and every study gets its SR, while malformed PDUs, an unknown AE title and an oversized
study are refused (the oversized one in part, with C001, and the part acknowledged analysed).
Once with 8 senders of 60 small slices, once with clinical-size 512 x 512 slices in a study
larger than the node used to hold (about 170 such slices), under the default memory limits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from service_helpers import API_KEY, live_server

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "dimse_loadtest.py"


def _run(app, tmp_path: Path, *options: str) -> dict:
    report_path = tmp_path / "report.json"
    with live_server(app) as base:
        port = app.state.dicom_node.port
        completed = subprocess.run(
            [sys.executable, str(SCRIPT), "--port", str(port), "--url", base, "--abuse", "--timeout", "300",
             "--json", str(report_path), *options],
            env={"FSD_API_KEY": API_KEY, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=600,
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr
        report = json.loads(report_path.read_text())
        malformed = [key for key in report["abuse"] if key.startswith("malformed")]
        assert len(malformed) == 5 and all(key.endswith(("closed", "aborted (A-ABORT)")) for key in malformed), report["abuse"]
        assert "unknown AE title: refused" in report["abuse"]
        assert app.state.collector.pending_bytes == 0
    return report


@pytest.mark.slow
def test_eight_senders_of_sixty_slices_lose_nothing_under_abuse(make_app, tmp_path):
    app = make_app(
        dicom_enabled=True, dicom_port=0, dicom_allowed_calling_ae_titles=["LOADTEST"], max_study_instances=100,
        max_batch_slices=8, dicom_timeout_s=20,
    )
    report = _run(app, tmp_path, "--senders", "8", "--slices", "60", "--oversized", "120")
    assert report["studies_lost"] == 0 and report["studies_with_sr"] == 8
    assert report["statuses"] == {"0000": 480}
    assert "oversized study: refused (20 of 120 instances C001), the 100 acknowledged analysed" in report["abuse"]


@pytest.mark.slow
def test_a_study_of_two_hundred_512_pixel_slices_is_taken_whole(make_app, tmp_path):
    app = make_app(
        dicom_enabled=True, dicom_port=0, dicom_allowed_calling_ae_titles=["LOADTEST"], max_study_instances=200,
        max_batch_slices=8, dicom_timeout_s=20,
    )
    assert app.state.settings.max_study_mib == 1200 and app.state.settings.max_pending_mib == 2048, "default memory limits"
    report = _run(app, tmp_path, "--senders", "1", "--slices", "200", "--size", "512", "--oversized", "220")
    assert report["studies_lost"] == 0 and report["studies_with_sr"] == 1
    assert report["statuses"] == {"0000": 200}
    assert "oversized study: refused (20 of 220 instances C001), the 200 acknowledged analysed" in report["abuse"]
