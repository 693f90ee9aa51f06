"""Abuse the in-process app with every DICOM file pydicom ships, damaged DICOMs and noise.

Every answer must be a 2xx or a 4xx in the error envelope (never 5xx), and the server must
still serve a normal request afterwards. Mutations are sampled with a fixed seed so each run
posts the same cases; the summary is printed (run with ``-s`` to see it; docs/benchmarks.md).
"""

from __future__ import annotations

import collections
import random
import time
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file, get_testdata_files
from service_helpers import AUTH, form_files, stow_request

SEED = 20240601
TRUNCATIONS = 60
BIT_FLIPS = 80
NOISE = 20


def _bundled_files() -> list[tuple[str, bytes]]:
    files = []
    for path in sorted(set(get_testdata_files())):
        if not Path(path).is_file():
            continue
        data = Path(path).read_bytes()
        if len(data) <= 8 * 2**20:
            files.append((Path(path).name, data))
    return files


def _mutations(bases: list[tuple[str, bytes]], rng: random.Random) -> list[tuple[str, bytes]]:
    cases = []
    for index in range(TRUNCATIONS):
        name, data = rng.choice(bases)
        cut = rng.choice([0, 1, 127, 128, 131, 132, 200, rng.randrange(1, len(data))])
        cases.append((f"truncated{index}-{name}", data[:cut]))
    for index in range(BIT_FLIPS):
        name, data = rng.choice(bases)
        mutated = bytearray(data)
        header_end = min(len(mutated), 1024)
        for _ in range(rng.choice([1, 4, 32])):  # mostly in the header, where parsing is fragile
            position = rng.randrange(header_end) if rng.random() < 0.7 else rng.randrange(len(mutated))
            mutated[position] ^= 1 << rng.randrange(8)
        cases.append((f"flipped{index}-{name}", bytes(mutated)))
    for index in range(NOISE):
        size = rng.choice([0, 1, 4, 132, 1000, 70_000])
        noise = bytes(rng.getrandbits(8) for _ in range(size))
        if index % 3 == 0:  # noise behind a valid preamble and magic
            noise = b"\x00" * 128 + b"DICM" + noise
        cases.append((f"noise{index}", noise))
    return cases


@pytest.mark.slow
def test_no_input_makes_the_server_fail(client, series_uploads):
    rng = random.Random(SEED)
    ct_small = Path(get_testdata_file("CT_small.dcm", download=False)).read_bytes()
    bundled = _bundled_files()
    cases = bundled + _mutations([("CT_small.dcm", ct_small), series_uploads[0]], rng)
    statuses: collections.Counter[int] = collections.Counter()
    codes: collections.Counter[str] = collections.Counter()
    started = time.monotonic()
    for index, (name, data) in enumerate(cases):
        accept = "application/dicom" if index % 5 == 0 else "application/json"
        if index % 4 == 0:
            body, content_type = stow_request([data])
            response = client.post("/v1/studies", content=body, headers={**AUTH, "Content-Type": content_type, "Accept": accept})
        else:
            response = client.post("/v1/detect", files=form_files([(name, data)]), headers={**AUTH, "Accept": accept})
        statuses[response.status_code] += 1
        assert response.status_code < 500, (name, response.status_code, response.text[:300])
        if response.status_code >= 400:
            error = response.json()["error"]
            assert error["code"] and error["message"], name
            codes[error["code"]] += 1
    # a damaged slice mixed into a good series fails cleanly too
    mixed = [*series_uploads[:2], ("bad.dcm", series_uploads[2][1][:700])]
    assert client.post("/v1/detect", files=form_files(mixed), headers=AUTH).status_code == 422
    elapsed = time.monotonic() - started
    print(
        f"\nfuzz: {len(cases)} inputs ({len(bundled)} bundled, {TRUNCATIONS} truncated, {BIT_FLIPS} bit-flipped, "
        f"{NOISE} noise) in {elapsed:.1f} s; statuses {dict(sorted(statuses.items()))}; codes {dict(codes.most_common())}"
    )
    assert client.get("/health/live").status_code == 200
    assert client.get("/health/ready").status_code == 200
    healthy = client.post("/v1/detect", files=form_files(series_uploads), headers=AUTH)
    assert healthy.status_code == 200 and len(healthy.json()["results"]) == len(series_uploads)
