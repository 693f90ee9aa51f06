"""Done-when of the hospital integration: every synthetic series and every file of pydicom's own
test data is answered by /v1/detect and by STOW-RS /v1/studies without a 5xx.

STOW-RS is sent the way DICOMweb clients send it (no Accept header, so the answer is the store
response): every instance is either stored or listed in FailedSOPSequence with a FailureReason.
"""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
from pydicom import Dataset
from pydicom.data import get_testdata_files
from service_helpers import AUTH, form_files, stow_request

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def every_synthetic_series(tmp_path_factory: pytest.TempPathFactory) -> list[list[bytes]]:
    from fsd.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("synth_every")
    generate_dataset(root, patients=3, size=64, seed=21, dicom=True, progress=False)
    folders = sorted(path for path in (root / "dicom").iterdir() if path.is_dir())
    assert folders
    return [[path.read_bytes() for path in sorted(folder.glob("*.dcm"))] for folder in folders]


def _stow(client, datas: list[bytes]):
    body, content_type = stow_request(datas)
    return client.post("/v1/studies", content=body, headers={**AUTH, "Content-Type": content_type})


def _check_store_response(response, sent: int) -> tuple[int, int]:
    assert response.status_code in (200, 202, 409), (response.status_code, response.text[:300])
    answer = Dataset.from_json(response.json())
    stored = len(answer.get("ReferencedSOPSequence", []))
    failed = answer.get("FailedSOPSequence", [])
    assert all(item.FailureReason for item in failed)
    assert stored + len(failed) == sent
    return stored, len(failed)


def test_every_synthetic_series_is_answered_by_both_routes(client, every_synthetic_series):
    for datas in every_synthetic_series:
        detect = client.post("/v1/detect", files=form_files([(f"{i}.dcm", d) for i, d in enumerate(datas)]), headers=AUTH)
        assert detect.status_code == 200 and len(detect.json()["results"]) == len(datas)
        stored, failed = _check_store_response(_stow(client, datas), len(datas))
        assert (stored, failed) == (len(datas), 0)


def test_every_pydicom_test_file_is_answered_without_a_server_error(client):
    files = sorted({Path(path) for path in get_testdata_files() if Path(path).is_file()})
    assert len(files) > 100, "pydicom ships its test files"
    statuses: collections.Counter[tuple[str, int]] = collections.Counter()
    for path in files:
        data = path.read_bytes()
        detect = client.post("/v1/detect", files=form_files([(path.name, data)]), headers=AUTH)
        assert detect.status_code < 500, (path.name, detect.status_code, detect.text[:300])
        if detect.status_code >= 400:
            assert detect.json()["error"]["code"], path.name
        stow = _stow(client, [data])
        _check_store_response(stow, 1)
        if detect.status_code == 200:
            assert stow.status_code == 200, (path.name, stow.text[:300])
        statuses["detect", detect.status_code] += 1
        statuses["studies", stow.status_code] += 1
    print(f"\n{len(files)} pydicom test files: {dict(sorted(statuses.items()))}")
    assert statuses["detect", 200] > 0 and statuses["studies", 200] > 0
    assert client.get("/health/ready").status_code == 200
