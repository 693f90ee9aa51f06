"""The intake spool (``intake_spool_dir``): every acknowledged instance is on disk (mode 0600 in
folders of mode 0700) before its acknowledgement, until its study's SR is made; it holds no more
than the memory for received instances; a spool that cannot be written refuses for now (503 /
A700) and keeps nothing; a study whose analysis the shutdown cut short stays there, and the next
start analyses it. The real collector, spool, node and model throughout; a real restart with
SIGKILL is in test_crash_recovery.py."""

from __future__ import annotations

import dataclasses
import io
import shutil
import stat
from pathlib import Path

import pydicom
from dicom_helpers import datasets_of, send_study, wait_for
from service_helpers import AUTH, SlowModule, metric, serving, stow_request

from service.common.dicom_status import OUT_OF_RESOURCES

NODE = {"dicom_enabled": True, "dicom_port": 0, "dicom_allowed_calling_ae_titles": ["TESTSCU"]}


def _post(client, datas: list[bytes]):
    body, content_type = stow_request(datas)
    return client.post("/v1/studies", content=body, headers={**AUTH, "Content-Type": content_type})


def _study(data: bytes) -> str:
    return str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).StudyInstanceUID)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_acknowledged_instances_are_on_disk_until_their_sr_is_made(make_app, series_uploads, tmp_path):
    spool = tmp_path / "intake"
    datas = [data for _, data in series_uploads]
    app = make_app(intake_spool_dir=spool, stow_study_quiet_s=60)
    with serving(app) as client:
        assert _post(client, datas).status_code == 200
        files = sorted(spool.glob("*/*.dcm"))
        assert len(files) == len(datas) and all(_mode(path) == 0o600 for path in files)
        assert _mode(spool) == 0o700 and _mode(files[0].parent) == 0o700
        assert sorted(path.read_bytes() for path in files) == sorted(datas), "the instances as they were received"
    (kept,) = app.state.sr_store.find(_study(datas[0]))  # analysed at shutdown, before its quiet time was over
    assert list(spool.iterdir()) == [], "the study's files went once its SR was made"


def test_the_spool_holds_no_more_than_the_memory_for_received_instances(make_app, series_uploads, tmp_path):
    spool = tmp_path / "intake"
    datas = [data for _, data in series_uploads]
    room = 1.5 * len(datas[0]) / 2**20  # one instance fits
    with serving(make_app(intake_spool_dir=spool, max_pending_mib=room, max_study_mib=room, stow_study_quiet_s=60)) as client:
        assert _post(client, datas[:1]).status_code == 200
        refused = _post(client, datas[1:3])
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "intake_full"
        assert len(list(spool.glob("*/*.dcm"))) == 1


def test_a_spool_that_cannot_be_written_refuses_for_now_and_keeps_nothing(make_app, series_uploads, tmp_path):
    spool = tmp_path / "intake"
    datas = [data for _, data in series_uploads]
    app = make_app(intake_spool_dir=spool, stow_study_quiet_s=60, dicom_study_quiet_s=60, **NODE)
    with serving(app) as client:
        shutil.rmtree(spool)
        spool.write_bytes(b"not a directory")  # the disk refuses every write below it
        refused = _post(client, datas)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "intake_spool_failed"
        assert refused.headers["Retry-After"] == "2"
        assert send_study(app.state.dicom_node.port, datasets_of(datas[:2])) == [OUT_OF_RESOURCES] * 2
        assert app.state.collector.pending_bytes == 0, "nothing refused is held"
        assert metric(client, 'fsd_requests_rejected_total{reason="intake_spool_failed"}') == 1


def test_a_study_cut_short_by_shutdown_stays_on_disk_and_the_next_start_analyses_it(make_app, inference_model, series_uploads, tmp_path):
    spool = tmp_path / "intake"
    datas = [data for _, data in series_uploads]
    study = _study(datas[0])
    module = SlowModule(inference_model.module)
    held = make_app(model=dataclasses.replace(inference_model, module=module), warmup_runs=0, shutdown_timeout_s=1, intake_spool_dir=spool, **NODE)
    try:
        with serving(held):
            assert send_study(held.state.dicom_node.port, datasets_of(datas)) == [0] * len(datas)
            assert module.entered.wait(timeout=30), "its analysis is under way (held in the model)"
    finally:
        module.release.set()
    assert held.state.sr_store.find(study) == [] and len(list(spool.glob("*/*.dcm"))) == len(datas)
    restarted = make_app(intake_spool_dir=spool)
    with serving(restarted) as client:
        wait_for(lambda: restarted.state.sr_store.find(study), what="the resumed study's SR")
        assert metric(client, "fsd_studies_resumed_total") == 1
        wait_for(lambda: list(spool.iterdir()) == [], what="its files deleted")
    (sr,) = restarted.state.sr_store.find(study)
    assert sr.dataset.StudyInstanceUID == study
