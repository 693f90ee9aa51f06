"""Real PACS-side peers for the integration tests: Orthanc (with its DICOMweb plugin) on
loopback with a generated configuration, and the dcmtk command-line tools.

``require_tools`` skips a test when a tool is missing on a developer's machine, and fails it
when the environment variable CI is set (``.ci/run`` installs them), so CI never skips these.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

ORTHANC_BINARY = "Orthanc"
DICOMWEB_PLUGIN_PATHS = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/plugins/libOrthancDicomWeb.so",
)
ORTHANC_AE = "ORTHANC"
ORTHANC_USER, ORTHANC_PASSWORD = "fsd", "orthanc-test-password"


def dicomweb_plugin() -> str | None:
    return next((path for path in DICOMWEB_PLUGIN_PATHS if Path(path).is_file()), None)


def program(name: str) -> str | None:
    """The path of a program on PATH, or in /usr/sbin (Debian puts Orthanc there; not on every user's PATH)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")


def require_tools(*names: str) -> None:
    """Skip (fail under CI) unless every named program, and for Orthanc its DICOMweb plugin, exists."""
    missing = [name for name in names if program(name) is None]
    if ORTHANC_BINARY in names and dicomweb_plugin() is None:
        missing.append("the Orthanc DICOMweb plugin (orthanc-dicomweb)")
    if not missing:
        return
    message = f"missing {', '.join(missing)} (apt-get install orthanc orthanc-dicomweb dcmtk)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}: CI must run the PACS integration tests", pytrace=False)
    pytest.skip(message)


class Orthanc:
    """One Orthanc process on loopback with its own storage directory; REST with basic auth."""

    def __init__(self, workdir: Path, http_port: int, dicom_port: int, *, modalities: dict[str, list[Any]],
                 dicomweb_servers: dict[str, dict[str, Any]]) -> None:
        self.workdir = workdir
        self.http_port = http_port
        self.dicom_port = dicom_port
        self.url = f"http://127.0.0.1:{http_port}"
        self.config_path = workdir / "orthanc.json"
        self.log_path = workdir / "orthanc.log"
        self._process: subprocess.Popen[bytes] | None = None
        config = {
            "Name": "fsd-integration-test",
            "StorageDirectory": str(workdir / "storage"),
            "IndexDirectory": str(workdir / "storage"),
            "HttpPort": http_port,
            "DicomPort": dicom_port,
            "DicomAet": ORTHANC_AE,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {ORTHANC_USER: ORTHANC_PASSWORD},
            "Plugins": [dicomweb_plugin()],
            # StowMaxInstances / StowMaxSize: newer DICOMweb plugins split a STOW-RS of many instances into
            # requests of at most that many instances / MB (the Debian 12 plugin, 1.7, sends one request)
            "DicomWeb": {
                "Enable": True, "Root": "/dicom-web/", "Servers": dicomweb_servers, "StowMaxInstances": 10, "StowMaxSize": 10,
            },
            "DicomModalities": modalities,
            "DicomAlwaysAllowStore": True,
            "DicomScuTimeout": 30,
            "HttpTimeout": 60,
            "ConcurrentJobs": 2,
        }
        self.config_path.write_text(json.dumps(config, indent=2))
        self.client = httpx.Client(base_url=self.url, auth=(ORTHANC_USER, ORTHANC_PASSWORD), timeout=120)

    def start(self, timeout_s: float = 60.0) -> None:
        with self.log_path.open("ab") as log:
            binary = program(ORTHANC_BINARY) or ORTHANC_BINARY
            self._process = subprocess.Popen([binary, str(self.config_path)], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise AssertionError(f"Orthanc exited with {self._process.returncode}:\n{self.log()}")
            try:
                if self.client.get("/system").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"Orthanc did not start:\n{self.log()}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def close(self) -> None:
        self.stop()
        self.client.close()

    def study_id(self, study_uid: str) -> str:
        found = self.client.post("/tools/lookup", content=study_uid).json()
        (study,) = [item["ID"] for item in found if item["Type"] == "Study"]
        return study

    def sr_instances(self, study_uid: str) -> list[bytes]:
        """The SR files Orthanc holds for the study (Part 10 bytes)."""
        series = self.client.post(
            "/tools/find", json={"Level": "Series", "Query": {"StudyInstanceUID": study_uid, "Modality": "SR"}}
        ).json()
        files = []
        for series_id in series:
            for instance in self.client.get(f"/series/{series_id}/instances").json():
                files.append(self.client.get(f"/instances/{instance['ID']}/file").content)
        return files
