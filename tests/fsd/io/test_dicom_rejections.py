"""Every rejection path of read_ct gives its documented code and a message naming the problem."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.pixels.decoders.base import Decoder, DecodeRunner
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
)

from fsd.io.dicom import MAX_FRAMES, DicomError, check_ct, read_ct, supported_transfer_syntaxes
from fsd.io.dicom import reader as dicom_module


def rejection(data: bytes, **kwargs) -> DicomError:
    with pytest.raises(DicomError) as caught:
        read_ct(data, **kwargs)
    return caught.value


# --------------------------------------------------------------------------- not_dicom


@pytest.mark.parametrize(
    "data",
    [
        b"",
        np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        b"\x00" * 128 + b"DICM" + np.random.default_rng(8).integers(0, 256, 512, dtype=np.uint8).tobytes(),
        b"Patient report\nThis is a plain text file, not an image.\n" * 20,
        b'{"resourceType": "ImagingStudy"}',
    ],
    ids=["empty", "random", "random-after-dicm-prefix", "text", "json"],
)
def test_non_dicom_input_is_not_dicom(data):
    assert rejection(data).code == "not_dicom"


# --------------------------------------------------------------------------- not_ct


def test_mr_image_is_not_ct(bundled_path):
    error = rejection(open(bundled_path("MR_small.dcm"), "rb").read())
    assert error.code == "not_ct"
    assert "MR Image Storage" in str(error) and "MR" in str(error)


def test_rt_plan_is_not_ct_before_it_is_no_pixels(bundled_path):
    """Precedence: the kind of object is checked before pixel presence."""
    error = rejection(open(bundled_path("rtplan.dcm"), "rb").read())
    assert error.code == "not_ct"
    assert "RT Plan Storage" in str(error)


def test_secondary_capture_labelled_ct_is_not_a_ct_image(ct_small, encode):
    """A screenshot of a CT (Secondary Capture, modality CT) carries no HU."""
    ct_small.SOPClassUID = pydicom.uid.SecondaryCaptureImageStorage
    ct_small.file_meta.MediaStorageSOPClassUID = pydicom.uid.SecondaryCaptureImageStorage
    assert rejection(encode(ct_small)).code == "not_ct"


def test_ct_sop_class_with_another_modality_is_not_ct(ct_small, encode):
    ct_small.Modality = "MR"
    assert rejection(encode(ct_small)).code == "not_ct"


# --------------------------------------------------------------------------- missing_tag


@pytest.mark.parametrize(
    "keyword",
    [
        "SOPInstanceUID",
        "SeriesInstanceUID",
        "Rows",
        "Columns",
        "BitsAllocated",
        "PixelRepresentation",
        "PixelSpacing",
        "RescaleIntercept",
        "RescaleSlope",
    ],
)
def test_missing_required_tag_is_named(ct_small, encode, keyword):
    delattr(ct_small, keyword)
    error = rejection(encode(ct_small))
    assert error.code == "missing_tag"
    assert keyword in str(error)


def test_rows_of_zero_is_an_invalid_tag(ct_small, encode):
    ct_small.Rows = 0
    error = rejection(encode(ct_small))
    assert error.code == "invalid_tag"
    assert "Rows" in str(error)


def test_zero_rescale_slope_is_an_invalid_tag(ct_small, encode):
    ct_small.RescaleSlope = 0
    assert rejection(encode(ct_small)).code == "invalid_tag"


# --------------------------------------------------------------------------- no_pixels


def test_ct_without_pixel_data_is_no_pixels(ct_small, encode):
    del ct_small.PixelData
    assert rejection(encode(ct_small)).code == "no_pixels"


def test_float_pixel_data_is_no_pixels(ct_small, encode):
    ct_small.FloatPixelData = ct_small.pixel_array.astype(np.float32).tobytes()
    del ct_small.PixelData
    error = rejection(encode(ct_small))
    assert error.code == "no_pixels"
    assert "FloatPixelData" in str(error)


# --------------------------------------------------------------------------- truncated


@pytest.mark.parametrize("kept", [0, 6, 12, 13, 5000, 32_768 + 11])
def test_pixel_data_cut_short_is_truncated(ct_small_bytes, pixel_offset, kept):
    """Cut inside the Pixel Data element (its header is 12 bytes, its value 32768)."""
    expected = {"truncated", "no_pixels"} if kept == 0 else {"truncated"}
    assert rejection(ct_small_bytes[: pixel_offset(ct_small_bytes) + kept]).code in expected


@pytest.mark.filterwarnings("ignore:End of file reached before delimiter")
@pytest.mark.parametrize("missing", [9, 500, 10_000])  # 8 = the sequence delimiter
def test_file_ending_inside_compressed_pixel_data_is_truncated(ct_small, encode, pixel_offset, missing):
    del ct_small[0xFFFCFFFC]  # trailing padding: cut the pixel data itself
    ct_small.compress(JPEG2000Lossless)
    data = encode(ct_small)
    end = len(data) - missing
    assert end > pixel_offset(data)
    assert rejection(data[:end]).code == "truncated"


@pytest.mark.filterwarnings("ignore:End of file reached before delimiter")
def test_truncated_mr_is_still_not_ct(bundled_path):
    data = open(bundled_path("MR_small_jp2klossless.dcm"), "rb").read()
    assert rejection(data[:-300]).code == "not_ct"


# --------------------------------------------------------------------------- too_large


@pytest.fixture
def decoder_calls(monkeypatch) -> list[str]:
    """Make every pydicom pixel-decoding entry point record its call and fail."""
    calls: list[str] = []

    def forbidden(name):
        def call(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} must not be called")

        return call

    for owner, name in [
        (Decoder, "as_array"),
        (Decoder, "iter_array"),
        (Decoder, "as_buffer"),
        (Decoder, "iter_buffer"),
        (DecodeRunner, "decode"),
        (DecodeRunner, "iter_decode"),
    ]:
        monkeypatch.setattr(owner, name, forbidden(f"{owner.__name__}.{name}"))
    return calls


def test_over_budget_is_too_large_before_anything_is_decoded(ct_small_bytes, decoder_calls):
    error = rejection(ct_small_bytes, max_pixel_bytes=128 * 128 * 2 - 1)
    assert error.code == "too_large"
    assert "128 x 128" in str(error)
    assert decoder_calls == []


def test_the_decoder_spy_does_catch_decoding(ct_small_bytes, decoder_calls):
    """Control for the test above: within budget the (sabotaged) decoder is reached."""
    assert rejection(ct_small_bytes).code == "invalid_pixel_data"
    assert decoder_calls


def test_check_ct_runs_every_check_but_decodes_nothing(ct_small_bytes, decoder_calls):
    check_ct(ct_small_bytes)  # valid: no error, and the (sabotaged) decoder is never reached
    with pytest.raises(DicomError) as over:
        check_ct(ct_small_bytes, max_pixel_bytes=128 * 128 * 2 - 1)
    with pytest.raises(DicomError) as cut:
        check_ct(ct_small_bytes[:-1000])
    assert (over.value.code, cut.value.code) == ("too_large", "truncated")
    assert decoder_calls == []


def test_exactly_on_budget_is_read(ct_small_bytes):
    assert len(read_ct(ct_small_bytes, max_pixel_bytes=128 * 128 * 2)) == 1


def test_deflate_bomb_is_too_large_before_inflating_it_all(ct_small, encode, monkeypatch):
    monkeypatch.setattr(dicom_module, "NON_PIXEL_ALLOWANCE", 0)
    ct_small.add_new(0x00091010, "OB", bytes(4 * 2**20))  # 4 MiB of zeros deflates to a few KiB
    ct_small.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    data = encode(ct_small)
    assert len(data) < 100_000

    error = rejection(data, max_pixel_bytes=2**20)

    assert error.code == "too_large"
    assert "inflates" in str(error)


def test_deflated_ct_within_budget_reads(ct_small, ct_small_bytes, encode):
    ct_small.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    hu = read_ct(encode(ct_small))[0].hu
    np.testing.assert_array_equal(hu, read_ct(ct_small_bytes)[0].hu)


@pytest.mark.parametrize("missing", [2, 100, 5000])  # the last byte is the even-length pad
def test_deflated_file_cut_short_is_a_dicom_error(ct_small, encode, missing):
    ct_small.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    data = encode(ct_small)
    assert rejection(data[:-missing]).code in {"not_dicom", "truncated"}


# --------------------------------------------------------------------------- unsupported_transfer_syntax


@pytest.mark.parametrize("syntax", [JPEGLSLossless, "1.2.826.0.1.3680043.99999.1"])
def test_unsupported_transfer_syntax_in_file_meta(ct_small, encode_claiming, syntax):
    error = rejection(encode_claiming(ct_small, UID(syntax)))
    assert error.code == "unsupported_transfer_syntax"
    assert UID(syntax).name in str(error)


def test_jpeg_ls_compressed_ct_is_unsupported(ct_small, encode):
    try:
        ct_small.compress(JPEGLSLossless)
    except (RuntimeError, NotImplementedError) as error:
        pytest.skip(f"no JPEG-LS encoder: {error}")
    assert rejection(encode(ct_small)).code == "unsupported_transfer_syntax"


def test_supported_syntaxes_follow_the_license_clean_decoders():
    supported = supported_transfer_syntaxes()
    assert ExplicitVRLittleEndian in supported
    assert pydicom.uid.RLELossless in supported  # built into pydicom
    assert JPEGLSLossless not in supported


# --------------------------------------------------------------------------- invalid_pixel_data


@pytest.mark.parametrize(
    "changes",
    [
        {"PhotometricInterpretation": "RGB", "SamplesPerPixel": 3, "PlanarConfiguration": 0},
        {"PhotometricInterpretation": "PALETTE COLOR"},
        {"PhotometricInterpretation": "YBR_FULL"},
        {"SamplesPerPixel": 2},
        {"BitsAllocated": 12, "BitsStored": 12, "HighBit": 11},
        {"BitsStored": 17},
    ],
    ids=["rgb", "palette", "ybr", "two-samples", "12-bit-allocated", "stored-over-allocated"],
)
def test_layouts_a_ct_cannot_have_are_invalid_pixel_data(ct_small, encode, changes):
    for keyword, value in changes.items():
        setattr(ct_small, keyword, value)
    assert rejection(encode(ct_small)).code == "invalid_pixel_data"


def test_compressed_frame_larger_than_the_header_says_is_refused_before_decoding(
    ct_small, encode, decoder_calls
):
    """A codestream may not declare more pixels than the header the budget was checked against."""
    ct_small.compress(JPEG2000Lossless)
    ct_small.Rows = ct_small.Columns = 16
    error = rejection(encode(ct_small))
    assert error.code == "invalid_pixel_data"
    assert "128 x 128" in str(error) and "16 x 16" in str(error)
    assert decoder_calls == []


def test_native_transfer_syntax_with_encapsulated_pixels_is_invalid(ct_small, encode):
    ct_small.compress(pydicom.uid.RLELossless)
    ct_small.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    assert rejection(encode(ct_small)).code == "invalid_pixel_data"


# --------------------------------------------------------------------------- invalid_geometry


@pytest.mark.parametrize(
    "keyword, value",
    [
        ("PixelSpacing", [0, 0.5]),
        ("PixelSpacing", [-0.5, 0.5]),
        ("PixelSpacing", [0.5]),
        ("PixelSpacing", ["nan", "0.5"]),
        ("ImageOrientationPatient", [1, 0, 0, 0, 1]),
        ("ImageOrientationPatient", [1, 0, 0, 1, 0, 0]),
        ("ImageOrientationPatient", [2, 0, 0, 0, 1, 0]),
        ("ImagePositionPatient", [1, 2]),
        ("ImagePositionPatient", ["inf", 0, 0]),
    ],
)
@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")
def test_impossible_geometry_is_invalid_geometry(ct_small, encode, keyword, value):
    setattr(ct_small, keyword, value)
    error = rejection(encode(ct_small))
    assert error.code == "invalid_geometry"
    assert keyword in str(error)


def test_too_many_frames_is_too_large_even_when_tiny(ct_small, encode):
    ct_small.Rows = ct_small.Columns = 1
    ct_small.NumberOfFrames = MAX_FRAMES + 1
    ct_small.PixelData = bytes(2 * (MAX_FRAMES + 1))

    error = rejection(encode(ct_small))

    assert error.code == "too_large"
    assert str(MAX_FRAMES) in str(error)
