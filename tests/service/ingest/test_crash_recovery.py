"""Nothing acknowledged is lost: the server process is killed (SIGKILL, a real subprocess)
between the acknowledgement of a study and its SR, once after a STOW-RS (dicomweb-client) and
once after a C-STORE (dcmtk's storescu); started again on the same intake spool, it analyses
the study and its SR reaches the real PACS (Orthanc, by C-STORE).

The quiet times are long, so each study is surely acknowledged and not analysed when the
process dies; after the restart the spool's studies are analysed at once.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
import pytest
import yaml
from dicom_helpers import NODE_AE, SENDER_AE, free_port, fresh_study, sr_evidence, wait_for
from pacs_helpers import ORTHANC_AE, Orthanc, require_tools
from service_helpers import API_KEY, AUTH

pytestmark = pytest.mark.slow
QUIET_S = 120.0
RESUMED = "fsd_studies_resumed_total"


class ServerProcess:
    """``python -m service`` with a settings file, as the Docker image runs it."""

    def __init__(self, settings: Path, port: int, node_port: int, intake: Path, log: Path) -> None:
        self.settings, self.port, self.node_port, self.intake, self.log = settings, port, node_port, intake, log
        self.base = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 180.0) -> None:
        env = {**os.environ, "FSD_API_KEY": API_KEY}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "service", "--config", str(self.settings)], env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the server exited:\n{self.log.read_text()[-3000:]}"
            try:
                if httpx.get(f"{self.base}/health/ready", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"the server did not become ready:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, nothing is flushed or analysed."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(timeout=30) == -signal.SIGKILL

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def metric(self, name: str) -> float:
        for line in httpx.get(f"{self.base}/metrics", timeout=10).text.splitlines():
            if line.startswith(name):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    require_tools("Orthanc", "storescu")
    workdir = tmp_path_factory.mktemp("orthanc")
    peer = Orthanc(workdir, free_port(), free_port(), modalities={}, dicomweb_servers={})
    peer.start()
    yield peer
    peer.close()


@pytest.fixture
def server(model_dir: Path, orthanc: Orthanc, tmp_path: Path) -> Iterator[ServerProcess]:
    port, node_port = free_port(), free_port()
    settings = {
        "model_dir": str(model_dir), "port": port, "device": "cpu", "warmup_runs": 1,
        "intake_spool_dir": str(tmp_path / "intake"), "sr_spool_dir": str(tmp_path / "sr"),
        "stow_study_quiet_s": QUIET_S, "dicom_study_quiet_s": QUIET_S,
        "dicom_enabled": True, "dicom_port": node_port, "dicom_allowed_calling_ae_titles": [SENDER_AE],
        "sr_destination_ae_title": ORTHANC_AE, "sr_destination_host": "127.0.0.1",
        "sr_destination_port": orthanc.dicom_port, "delivery_retry_initial_s": 0.5, "delivery_retry_max_s": 2.0,
    }
    path = tmp_path / "service.yaml"
    path.write_text(yaml.safe_dump(settings))
    process = ServerProcess(path, port, node_port, tmp_path / "intake", tmp_path / "server.log")
    yield process
    process.stop()


def _killed_and_restarted_delivers(server: ServerProcess, orthanc: Orthanc, datasets: list[pydicom.Dataset]) -> None:
    study = str(datasets[0].StudyInstanceUID)
    spooled = list(server.intake.glob("*/*.dcm"))
    assert len(spooled) == len(datasets), "every acknowledged instance is on disk"
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in spooled), "readable by the service's user only"
    assert orthanc.sr_instances(study) == [], "not analysed before the kill"
    server.kill()
    server.start()
    assert server.metric(RESUMED) == 1
    (data,) = wait_for(lambda: orthanc.sr_instances(study), timeout_s=90, what=f"the SR in Orthanc\n{orthanc.log()}")
    sr = pydicom.dcmread(io.BytesIO(data))
    assert sr.StudyInstanceUID == study and sr_evidence(sr) == {str(ds.SOPInstanceUID) for ds in datasets}
    wait_for(lambda: not any(server.intake.iterdir()), timeout_s=30, what="the study's files deleted")


def test_a_study_acknowledged_by_stow_rs_survives_a_kill(server, orthanc, series_uploads):
    from dicomweb_client.api import DICOMwebClient

    server.start()
    datasets = fresh_study([data for _, data in series_uploads])
    answer = DICOMwebClient(url=f"{server.base}/v1", headers=AUTH).store_instances(datasets)
    assert len(answer.ReferencedSOPSequence) == len(datasets) and "FailedSOPSequence" not in answer
    _killed_and_restarted_delivers(server, orthanc, datasets)


def test_a_study_acknowledged_by_c_store_survives_a_kill(server, orthanc, series_uploads, tmp_path):
    server.start()
    datasets = fresh_study([data for _, data in series_uploads])
    folder = tmp_path / "study"
    folder.mkdir()
    for index, ds in enumerate(datasets):
        ds.save_as(folder / f"{index:03d}.dcm", enforce_file_format=True)
    sent = subprocess.run(
        ["storescu", "-aet", SENDER_AE, "-aec", NODE_AE, "127.0.0.1", str(server.node_port), *sorted(map(str, folder.iterdir()))],
        capture_output=True, text=True, timeout=120,
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    _killed_and_restarted_delivers(server, orthanc, datasets)
