"""read_ct on real CT data: HU, geometry and identifiers, MONOCHROME1, files on disk, PHI hygiene."""

from __future__ import annotations

import logging

import numpy as np
import pydicom
import pytest
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.pixels import apply_modality_lut

from fsd.errors import FsdError
from fsd.io.dicom import CTSlice, DicomError, hash_uid, read_ct, read_ct_file


def test_ct_small_reads_as_one_slice_in_hu(ct_small, ct_small_bytes):
    slices = read_ct(ct_small_bytes)

    assert len(slices) == 1
    ct = slices[0]
    assert isinstance(ct, CTSlice)
    assert ct.hu.dtype == np.float32
    assert ct.hu.shape == (128, 128)
    stored = ct_small.pixel_array
    np.testing.assert_array_equal(ct.hu, apply_modality_lut(stored, ct_small).astype(np.float32))
    np.testing.assert_array_equal(ct.hu, stored.astype(np.float32) - 1024.0)  # slope 1, intercept -1024
    assert (ct.hu.min(), ct.hu.max()) == (-896.0, 1167.0)


def test_ct_small_geometry_and_identifiers(ct_small, ct_small_bytes):
    ct = read_ct(ct_small_bytes)[0]

    assert ct.spacing_mm == pytest.approx((0.661468, 0.661468))
    assert ct.position_mm == pytest.approx((-158.135803, -179.035797, -75.699997))
    assert ct.orientation == pytest.approx((1, 0, 0, 0, 1, 0))
    assert ct.slice_location == pytest.approx(-77.2040634155)
    assert ct.slice_thickness_mm == pytest.approx(5.0)
    assert ct.instance_number == 1
    assert (ct.frame, ct.number_of_frames) == (1, 1)
    assert ct.sop_instance_uid == ct_small.SOPInstanceUID
    assert ct.series_instance_uid == ct_small.SeriesInstanceUID
    assert ct.study_instance_uid == ct_small.StudyInstanceUID
    assert ct.window is None  # CT_small stores no VOI window
    # axial slice: the normal is +z, so the normal position is the z coordinate
    assert ct.normal_position_mm == pytest.approx(-75.699997)
    assert ct.stack_position == pytest.approx(-75.699997)


def test_window_is_the_first_stored_voi_window(ct_small, encode):
    ct_small.WindowCenter = [40, 300]
    ct_small.WindowWidth = [400, 1500]

    assert read_ct(encode(ct_small))[0].window == (40.0, 400.0)


def test_rescale_slope_and_intercept_are_applied(ct_small, encode):
    stored = ct_small.pixel_array.astype(np.float32)
    ct_small.RescaleSlope = 0.5
    ct_small.RescaleIntercept = -100

    hu = read_ct(encode(ct_small))[0].hu

    np.testing.assert_allclose(hu, stored * 0.5 - 100)


def test_monochrome1_gives_the_hu_dicom_defines(ct_small, ct_small_bytes, encode):
    """MONOCHROME1 is a display inversion applied after the VOI LUT (PS3.3 C.7.6.3.1.2): the modality
    LUT output (HU) does not depend on it, so air stays near -1000 and bone stays high."""
    monochrome2 = read_ct(ct_small_bytes)[0].hu
    ct_small.PhotometricInterpretation = "MONOCHROME1"

    monochrome1 = read_ct(encode(ct_small))[0].hu

    np.testing.assert_array_equal(monochrome1, monochrome2)
    assert monochrome1.min() < -800 < 1000 < monochrome1.max()


def test_bundled_axial_ct_with_non_trivial_slice_positions(bundled_path):
    path = bundled_path("2062")  # dicomdirtests/98892001/CT5N/2062
    ds = pydicom.dcmread(path)

    ct = read_ct_file(path)[0]

    np.testing.assert_array_equal(ct.hu, apply_modality_lut(ds.pixel_array, ds).astype(np.float32))
    assert ct.position_mm == pytest.approx((-72.199997, -143.0, 8.7625))
    assert ct.spacing_mm == pytest.approx((0.488281, 0.488281))


def test_read_ct_file_reads_like_read_ct(tmp_path, ct_small_bytes):
    path = tmp_path / "slice.dcm"
    path.write_bytes(ct_small_bytes)

    from_file = read_ct_file(path)
    from_bytes = read_ct(ct_small_bytes)

    np.testing.assert_array_equal(from_file[0].hu, from_bytes[0].hu)
    assert from_file[0].sop_instance_uid == from_bytes[0].sop_instance_uid


def test_read_ct_file_passes_the_budget_on(tmp_path, ct_small_bytes):
    path = tmp_path / "slice.dcm"
    path.write_bytes(ct_small_bytes)

    with pytest.raises(DicomError) as caught:
        read_ct_file(str(path), max_pixel_bytes=1024)
    assert caught.value.code == "too_large"


def test_read_ct_file_reports_a_missing_file_as_dicom_error(tmp_path):
    with pytest.raises(DicomError) as caught:
        read_ct_file(tmp_path / "absent.dcm")
    assert caught.value.code == "file_unreadable"
    assert "absent.dcm" in str(caught.value)


def test_dicom_error_is_an_fsd_error_with_a_stable_code():
    with pytest.raises(FsdError) as caught:
        read_ct(b"")
    assert isinstance(caught.value, DicomError)
    assert caught.value.code == "not_dicom"
    assert str(caught.value).endswith(".")


def test_hash_uid_is_short_stable_and_does_not_reveal_the_uid():
    uid = "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"

    digest = hash_uid(uid)

    assert digest == hash_uid(uid)
    assert len(digest) == 12 and all(c in "0123456789abcdef" for c in digest)
    assert digest != hash_uid(uid + "1")
    assert digest not in uid


def test_no_patient_data_in_messages_or_logs(ct_small, encode, pixel_offset, caplog):
    ct_small.PatientName = "Doe^Jane"
    ct_small.PatientID = "PID-778899"
    ct_small.PatientBirthDate = "19450203"
    phi = ("Doe", "Jane", "PID-778899", "19450203", ct_small.SOPInstanceUID, ct_small.SeriesInstanceUID)
    good = encode(ct_small)
    ct_small.PixelSpacing = [0, 0]
    bad_geometry = encode(ct_small)
    del ct_small.PixelData
    no_pixels = encode(ct_small)

    messages = []
    with caplog.at_level(logging.DEBUG):
        read_ct(good)
        truncated = good[: pixel_offset(good) + 1000]
        for data in (bad_geometry, no_pixels, truncated, good, b"not dicom"):
            try:
                read_ct(data, max_pixel_bytes=1024 if data is good else 256 * 2**20)
            except DicomError as error:
                messages.append(str(error))
    assert len(messages) == 5
    logged = caplog.text + " ".join(messages)
    assert caplog.records  # the reader does log, just not patient data
    for value in phi:
        assert value not in logged


@pytest.mark.parametrize(
    "syntax",
    [
        pydicom.uid.ImplicitVRLittleEndian,
        pydicom.uid.ExplicitVRBigEndian,
        pydicom.uid.DeflatedExplicitVRLittleEndian,
    ],
    ids=lambda uid: uid.name,
)
def test_every_uncompressed_transfer_syntax_gives_the_same_hu(ct_small, ct_small_bytes, encode, syntax):
    stored = ct_small.pixel_array
    if syntax == pydicom.uid.ExplicitVRBigEndian:
        ct_small.PixelData = stored.astype(">i2").tobytes()
    ct_small.file_meta.TransferSyntaxUID = syntax

    hu = read_ct(encode(ct_small))[0].hu

    np.testing.assert_array_equal(hu, read_ct(ct_small_bytes)[0].hu)


def test_dataset_without_file_meta_is_read_from_its_encoding(ct_small, ct_small_bytes):
    """Older archives store bare data sets (no preamble, no File Meta): the encoding is inferred."""
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, True
    write_dataset(body, ct_small)

    hu = read_ct(body.getvalue())[0].hu

    np.testing.assert_array_equal(hu, read_ct(ct_small_bytes)[0].hu)
