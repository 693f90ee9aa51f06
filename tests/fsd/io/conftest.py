"""Shared helpers for the DICOM reader tests: pydicom's bundled CT_small.dcm and in-memory encoding."""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import dcmwrite, write_dataset, write_file_meta_info


def _bundled(name: str) -> str:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not bundled with this pydicom")
    return str(path)


def encode_dataset(ds: Dataset) -> bytes:
    """The DICOM file bytes of ``ds`` (with File Meta), written to memory."""
    buffer = BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def encode_claiming_syntax(ds: Dataset, syntax: str) -> bytes:
    """``ds`` written as Explicit VR Little Endian under File Meta that names ``syntax`` instead.

    pydicom refuses to write native pixels under a compressed syntax, so the meta is written apart.
    """
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    meta = DicomBytesIO()
    ds.file_meta.TransferSyntaxUID = syntax
    write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
    return b"\x00" * 128 + b"DICM" + meta.getvalue() + body.getvalue()


def pixel_data_offset(data: bytes) -> int:
    """Offset of the (7FE0,0010) Pixel Data tag in little endian DICOM bytes."""
    offset = data.rfind(b"\xe0\x7f\x10\x00")
    assert offset > 0
    return offset


@pytest.fixture
def bundled_path() -> Callable[[str], str]:
    """Path of a file pydicom ships (never downloads); skips the test when it is absent."""
    return _bundled


@pytest.fixture
def ct_small() -> Dataset:
    """A fresh copy of CT_small.dcm: 128 x 128 CT, int16, slope 1, intercept -1024."""
    return pydicom.dcmread(_bundled("CT_small.dcm"))


@pytest.fixture
def ct_small_bytes() -> bytes:
    with open(_bundled("CT_small.dcm"), "rb") as handle:
        return handle.read()


@pytest.fixture
def encode() -> Callable[[Dataset], bytes]:
    return encode_dataset


@pytest.fixture
def encode_claiming() -> Callable[[Dataset, str], bytes]:
    return encode_claiming_syntax


@pytest.fixture
def pixel_offset() -> Callable[[bytes], int]:
    return pixel_data_offset
