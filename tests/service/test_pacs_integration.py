"""Round trips with real hospital-side software: Orthanc 1.10 with its DICOMweb plugin, dcmtk
(storescu, echoscu, dsrdump), dicomweb-client and highdicom, against the service on loopback.

(a) storescu -> Orthanc -> STOW-RS (a study of 24 slices in several requests) -> service -> one SR
    by STOW-RS (basic auth) -> Orthanc
(b) Orthanc -> C-STORE -> the service's DICOM node -> SR by C-STORE -> Orthanc
(c) dicomweb-client stores a study (chunked) and reads the SR back by WADO-RS
(d) echoscu against the DICOM node
(e) the SR passes dsrdump and highdicom reads its measurement groups
(f) Orthanc is down while the SR is delivered; started again, it still gets the SR

Missing tools skip these tests on a developer's machine and fail them under CI.
"""

from __future__ import annotations

import base64
import io
import logging
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import httpx
import pydicom
import pytest
from dicom_helpers import free_port, fresh_study, send_study, wait_for
from dicom_helpers import retrieve_when_analysed as _retrieve_when_analysed
from dicom_helpers import sr_evidence as evidence
from pacs_helpers import ORTHANC_AE, ORTHANC_PASSWORD, ORTHANC_USER, Orthanc, require_tools
from service_helpers import API_KEY, AUTH, live_server

from service import create_app, load_settings

pytestmark = pytest.mark.slow
STUDY_SLICES = 6
#: a study of more slices than Orthanc's StowMaxInstances (10 by default), in two series
LONG_STUDY_SLICES = 24
STOW_QUIET_S = 3.0
RETRY = {"delivery_retry_initial_s": 0.3, "delivery_retry_max_s": 1.0}


@dataclass
class Pacs:
    orthanc: Orthanc
    stow_service: str
    node_service: str
    node_port: int


@pytest.fixture(scope="module")
def slices(synth_series_root: Path) -> list[bytes]:
    files = sorted(synth_series_root.glob("*.dcm"))
    middle = len(files) // 2
    return [path.read_bytes() for path in files[middle - STUDY_SLICES // 2 : middle + STUDY_SLICES // 2]]


@pytest.fixture(scope="module")
def long_slices(synth_series_root: Path) -> list[bytes]:
    files = sorted(synth_series_root.glob("*.dcm"))
    assert len(files) >= LONG_STUDY_SLICES
    return [path.read_bytes() for path in files[:LONG_STUDY_SLICES]]


@pytest.fixture(scope="module")
def synth_series_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fsd.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("pacs_synth")
    generate_dataset(root, patients=1, size=64, seed=5, dicom=True, progress=False)
    return sorted((root / "dicom").iterdir())[0]


def write_files(datasets: list[pydicom.Dataset], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, ds in enumerate(datasets):
        path = folder / f"{index:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def metric(base: str, line_start: str) -> float:
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture(scope="module")
def pacs(model_dir, inference_model, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pacs]:
    require_tools("Orthanc", "storescu", "echoscu", "dsrdump")
    workdir = tmp_path_factory.mktemp("orthanc")
    orthanc_http, orthanc_dicom, node_port = free_port(), free_port(), free_port()
    basic = base64.b64encode(f"{ORTHANC_USER}:{ORTHANC_PASSWORD}".encode()).decode()
    common = {"model_dir": model_dir, "api_key": API_KEY, "warmup_runs": 1, "max_wait_ms": 5.0, **RETRY}
    stow_settings = load_settings(
        **common,
        stow_study_quiet_s=STOW_QUIET_S,
        sr_destination_stow_url=f"http://127.0.0.1:{orthanc_http}/dicom-web",
        sr_destination_authorization=f"Basic {basic}",
    )
    node_settings = load_settings(
        **common,
        dicom_enabled=True,
        dicom_port=node_port,
        dicom_allowed_calling_ae_titles=[ORTHANC_AE, "TESTSCU"],
        sr_destination_ae_title=ORTHANC_AE,
        sr_destination_host="127.0.0.1",
        sr_destination_port=orthanc_dicom,
    )
    with ExitStack() as stack:
        stow_base = stack.enter_context(live_server(create_app(stow_settings, model=inference_model)))
        node_base = stack.enter_context(live_server(create_app(node_settings, model=inference_model)))
        orthanc = Orthanc(
            workdir, orthanc_http, orthanc_dicom,
            modalities={"fsd": ["FSD", "127.0.0.1", node_port]},
            dicomweb_servers={"fsd": {"Url": f"{stow_base}/v1/", "HttpHeaders": {"X-API-Key": API_KEY}}},
        )
        stack.callback(orthanc.close)
        orthanc.start()
        yield Pacs(orthanc, stow_base, node_base, node_port)


def _storescu(pacs: Pacs, paths: list[Path]) -> None:
    done = subprocess.run(
        ["storescu", "-aet", "TESTSCU", "-aec", ORTHANC_AE, "127.0.0.1", str(pacs.orthanc.dicom_port), *map(str, paths)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _sr_in_orthanc(pacs: Pacs, study: str) -> pydicom.Dataset:
    (data,) = wait_for(lambda: pacs.orthanc.sr_instances(study), timeout_s=90, what=f"the SR in Orthanc\n{pacs.orthanc.log()}")
    return pydicom.dcmread(io.BytesIO(data))


def test_a_orthanc_stows_a_study_in_several_requests_and_one_sr_comes_back(pacs, long_slices, tmp_path):
    """24 slices in 2 series, STOWed by Orthanc one series at a time (as an OnStableSeries rule does;
    newer DICOMweb plugins also split each series into requests of StowMaxInstances): one SR."""
    datasets = fresh_study(long_slices, series_count=2)
    study = str(datasets[0].StudyInstanceUID)
    _storescu(pacs, write_files(datasets, tmp_path / "study"))
    posted = 'fsd_http_requests_total{method="POST",route="/v1/studies",status="200"}'
    before = metric(pacs.stow_service, posted)
    for series in sorted({str(ds.SeriesInstanceUID) for ds in datasets}):
        (series_id,) = [item["ID"] for item in pacs.orthanc.client.post("/tools/lookup", content=series).json()]
        stow = pacs.orthanc.client.post("/dicom-web/servers/fsd/stow", json={"Resources": [series_id], "Synchronous": True})
        assert stow.status_code == 200, stow.text + pacs.orthanc.log()
    assert metric(pacs.stow_service, posted) >= before + 2, "the study came in several STOW-RS requests"
    sr = _sr_in_orthanc(pacs, study)
    assert sr.Modality == "SR" and sr.StudyInstanceUID == study
    assert sr.SeriesInstanceUID not in {ds.SeriesInstanceUID for ds in datasets}, "the SR has its own series"
    assert evidence(sr) == {str(ds.SOPInstanceUID) for ds in datasets}, "one SR over the whole study"
    time.sleep(STOW_QUIET_S + 2)
    assert len(pacs.orthanc.sr_instances(study)) == 1, "exactly one SR"
    delivered = 'fsd_sr_deliveries_total{destination="stow",outcome="delivered"}'
    wait_for(lambda: metric(pacs.stow_service, delivered) >= 1, what="the delivery counted in /metrics")


def test_b_orthanc_c_stores_to_the_node_and_the_sr_comes_back(pacs, slices, tmp_path):
    datasets = fresh_study(slices)
    study = str(datasets[0].StudyInstanceUID)
    _storescu(pacs, write_files(datasets, tmp_path / "study"))
    sent = pacs.orthanc.client.post(
        "/modalities/fsd/store", json={"Resources": [pacs.orthanc.study_id(study)], "Synchronous": True}
    )
    assert sent.status_code == 200, sent.text + pacs.orthanc.log()
    sr = _sr_in_orthanc(pacs, study)
    assert evidence(sr) == {str(ds.SOPInstanceUID) for ds in datasets}
    assert sr.SeriesInstanceUID != datasets[0].SeriesInstanceUID


def test_c_dicomweb_client_stores_and_reads_the_sr_back(pacs, slices, caplog):
    from dicomweb_client.api import DICOMwebClient

    datasets = fresh_study(slices)
    study = str(datasets[0].StudyInstanceUID)
    client = DICOMwebClient(url=f"{pacs.stow_service}/v1", headers=AUTH, chunk_size=16 * 1024)
    with caplog.at_level(logging.INFO, logger="dicomweb_client"):
        answer = client.store_instances(datasets)
    assert "chunked transfer encoding" in caplog.text, "the body went chunked"
    assert [item.ReferencedSOPInstanceUID for item in answer.ReferencedSOPSequence] == [ds.SOPInstanceUID for ds in datasets]
    assert "FailedSOPSequence" not in answer and answer.RetrieveURL.endswith(f"/v1/studies/{study}")
    (sr,) = _retrieve_when_analysed(client, study)
    assert sr.Modality == "SR" and evidence(sr) == {str(ds.SOPInstanceUID) for ds in datasets}
    (metadata,) = client.retrieve_study_metadata(study)
    assert pydicom.Dataset.from_json(metadata).SOPInstanceUID == sr.SOPInstanceUID
    same = client.retrieve_instance(study, sr.SeriesInstanceUID, sr.SOPInstanceUID)
    assert same.SOPInstanceUID == sr.SOPInstanceUID and same.Modality == "SR"


def test_d_echoscu_reaches_the_node_and_strangers_are_refused(pacs):
    ok = subprocess.run(
        ["echoscu", "-aet", "TESTSCU", "-aec", "FSD", "127.0.0.1", str(pacs.node_port)],
        capture_output=True, text=True, timeout=60,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    refused = subprocess.run(
        ["echoscu", "-aet", "INTRUDER", "-aec", "FSD", "127.0.0.1", str(pacs.node_port)],
        capture_output=True, text=True, timeout=60,
    )
    assert refused.returncode != 0 and "Rejected" in refused.stdout + refused.stderr


def test_e_the_sr_passes_dsrdump_and_highdicom_reads_its_groups(pacs, slices, tmp_path, inference_model):
    from dicomweb_client.api import DICOMwebClient

    datasets = fresh_study(slices)
    client = DICOMwebClient(url=f"{pacs.stow_service}/v1", headers=AUTH)
    client.store_instances(datasets)
    (sr,) = _retrieve_when_analysed(client, str(datasets[0].StudyInstanceUID))
    path = tmp_path / "sr.dcm"
    sr.save_as(path, enforce_file_format=True)
    dumped = subprocess.run(["dsrdump", str(path)], capture_output=True, text=True, timeout=60)
    assert dumped.returncode == 0, dumped.stderr
    problems = [line for line in (dumped.stdout + dumped.stderr).splitlines() if line.startswith(("E:", "F:", "W:"))]
    assert problems == [], problems
    assert "Imaging Measurement Report" in dumped.stdout
    document = hd.sr.srread(path)
    groups = document.content.get_planar_roi_measurement_groups()
    assert groups, "the untrained test model (score threshold 0) always finds something"
    typed = inference_model.task == "types"  # a typed model's findings also carry P(type | lesion)
    for group in groups:
        assert group.roi.GraphicType == "POLYLINE"
        measured = {measurement.name.meaning for measurement in group.get_measurements()}
        assert measured == {"Long axis", "Probability"} | ({"Lesion type probability"} if typed else set())
        referenced = group.roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        assert referenced in {str(ds.SOPInstanceUID) for ds in datasets}


def test_f_a_pacs_that_is_down_during_delivery_still_gets_the_sr(pacs, slices):
    datasets = fresh_study(slices)
    study = str(datasets[0].StudyInstanceUID)
    failed = 'fsd_sr_deliveries_total{destination="dimse",outcome="failed"}'
    before = metric(pacs.node_service, failed)
    pacs.orthanc.stop()
    try:
        assert send_study(pacs.node_port, datasets, calling="TESTSCU") == [0] * len(datasets)
        wait_for(lambda: metric(pacs.node_service, failed) >= before + 2, what="failed deliveries while Orthanc is down")
        assert metric(pacs.node_service, "fsd_sr_delivery_pending") == 1
    finally:
        pacs.orthanc.start()
    sr = _sr_in_orthanc(pacs, study)
    assert evidence(sr) == {str(ds.SOPInstanceUID) for ds in datasets}
    wait_for(lambda: metric(pacs.node_service, "fsd_sr_delivery_pending") == 0, what="an empty delivery queue")
