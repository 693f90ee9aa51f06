"""Damaged input (cuts, bit flips, overwritten header bytes, noise) gives a DicomError or a sane result.

Hypothesis runs derandomized, so every run tries the same (seeded) cases.
"""

from __future__ import annotations

from functools import cache
from io import BytesIO

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.filewriter import dcmwrite
from pydicom.uid import JPEG2000Lossless, RLELossless

from fsd.io.dicom import DicomError, read_ct

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns about damaged tags

FUZZ = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@cache
def sample(kind: str) -> bytes:
    """CT_small as stored ('native') or re-encoded losslessly ('rle', 'jpeg2000')."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
    if kind != "native":
        ds.compress({"rle": RLELossless, "jpeg2000": JPEG2000Lossless}[kind])
    buffer = BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def pixel_data_offset(data: bytes) -> int:
    return data.rfind(b"\xe0\x7f\x10\x00")


def assert_clean_outcome(data: bytes) -> None:
    """read_ct either raises DicomError or returns well-formed slices; nothing else may happen."""
    try:
        slices = read_ct(data)
    except DicomError as error:
        assert error.code and str(error)
        return
    assert slices
    for number, ct in enumerate(slices, start=1):
        assert ct.frame == number
        assert ct.hu.dtype == np.float32 and ct.hu.ndim == 2 and ct.hu.size > 0
        assert np.isfinite(ct.hu).all()
        assert all(np.isfinite(ct.spacing_mm)) and min(ct.spacing_mm) > 0


KINDS = st.sampled_from(["native", "rle", "jpeg2000"])


@FUZZ
@given(kind=KINDS, fraction=st.floats(0, 1))
def test_truncated_anywhere(kind, fraction):
    data = sample(kind)
    assert_clean_outcome(data[: int(len(data) * fraction)])


@FUZZ
@given(kind=KINDS, flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 7)), min_size=1, max_size=8))
def test_bit_flips_anywhere(kind, flips):
    data = bytearray(sample(kind))
    for fraction, bit in flips:
        data[min(int(len(data) * fraction), len(data) - 1)] ^= 1 << bit
    assert_clean_outcome(bytes(data))


@FUZZ
@given(kind=KINDS, position=st.floats(0, 1), noise=st.binary(min_size=1, max_size=16))
def test_header_bytes_overwritten(kind, position, noise):
    """The header (tags, lengths, VRs) is where damage confuses a parser most."""
    data = bytearray(sample(kind))
    start = int(pixel_data_offset(bytes(data)) * position)
    data[start : start + len(noise)] = noise
    assert_clean_outcome(bytes(data))


@FUZZ
@given(noise=st.binary(max_size=4096), with_prefix=st.booleans())
def test_noise_is_never_a_ct(noise, with_prefix):
    data = (b"\x00" * 128 + b"DICM" if with_prefix else b"") + noise
    with pytest.raises(DicomError):
        read_ct(data)


@pytest.mark.parametrize("kind", ["native", "jpeg2000"])
def test_every_cut_through_the_header(kind):
    data = sample(kind)
    for end in range(0, pixel_data_offset(data) + 16, 13):
        with pytest.raises(DicomError):
            read_ct(data[:end])
