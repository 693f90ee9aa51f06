"""Compressed CT (RLE, JPEG 2000, JPEG baseline) decodes to the HU of the original, with allowed plugins."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
from PIL import Image
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels.decoders.base import Decoder
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, RLELossless

from fsd.io.dicom import DicomError, read_ct


@pytest.fixture
def plugins_used(monkeypatch) -> list[str]:
    """Record the decoding plugin named on every pydicom decode call, then decode normally."""
    used: list[str] = []
    original = Decoder.iter_array

    def spy(self, src, **kwargs):
        used.append(kwargs.get("decoding_plugin", ""))
        return original(self, src, **kwargs)

    monkeypatch.setattr(Decoder, "iter_array", spy)
    return used


def compressed(ds, syntax):
    try:
        ds.compress(syntax)
    except (RuntimeError, NotImplementedError) as error:
        pytest.skip(f"pydicom has no encoder for {syntax.name} here: {error}")
    return ds


@pytest.mark.parametrize(
    "syntax, allowed_plugins",
    [(RLELossless, {"pydicom"}), (JPEG2000Lossless, {"pylibjpeg", "gdcm"})],
    ids=["rle", "jpeg2000-lossless"],
)
def test_lossless_compressed_ct_gives_the_original_hu(
    ct_small, ct_small_bytes, encode, plugins_used, syntax, allowed_plugins
):
    original = read_ct(ct_small_bytes)[0]
    data = encode(compressed(ct_small, syntax))
    plugins_used.clear()

    ct = read_ct(data)[0]

    np.testing.assert_array_equal(ct.hu, original.hu)
    assert ct.spacing_mm == original.spacing_mm
    assert ct.position_mm == original.position_mm
    assert plugins_used and set(plugins_used) <= allowed_plugins


def test_bundled_lossy_jpeg2000_ct_decodes(bundled_path, plugins_used):
    with open(bundled_path("693_J2KI.dcm"), "rb") as handle:
        ct = read_ct(handle.read())[0]

    assert ct.hu.shape == (512, 512)
    assert ct.window == (40.0, 100.0)
    air = ((ct.hu > -1100) & (ct.hu < -900)).mean()
    soft_tissue = ((ct.hu > -200) & (ct.hu < 200)).mean()
    assert air > 0.2 and soft_tissue > 0.1  # a body in air, in HU (not raw stored values)
    assert set(plugins_used) <= {"pylibjpeg", "gdcm"}


def test_jpeg_baseline_ct_decodes_with_a_license_clean_plugin(ct_small, encode, plugins_used):
    """JPEG must never go to pylibjpeg, which would pick the GPL libjpeg plug-in if installed."""
    stored = ct_small.pixel_array.astype(np.float64)
    gray = np.rint((stored - stored.min()) * 255 / (stored.max() - stored.min())).astype(np.uint8)
    jpeg = BytesIO()
    Image.fromarray(gray).save(jpeg, format="JPEG", quality=95)
    expected = np.asarray(Image.open(BytesIO(jpeg.getvalue())), dtype=np.float32) * 8 - 1024

    ct_small.BitsAllocated, ct_small.BitsStored, ct_small.HighBit = 8, 8, 7
    ct_small.PixelRepresentation = 0
    ct_small.RescaleSlope, ct_small.RescaleIntercept = 8, -1024
    ct_small.PixelData = encapsulate([jpeg.getvalue()])
    ct_small["PixelData"].VR = "OB"
    ct_small.file_meta.TransferSyntaxUID = JPEGBaseline8Bit

    ct = read_ct(encode(ct_small))[0]

    np.testing.assert_allclose(ct.hu, expected, atol=8)  # at most one gray level between decoders
    assert plugins_used and set(plugins_used) <= {"gdcm", "pillow"}


def test_compressed_frame_that_is_not_a_codestream_is_invalid_pixel_data(ct_small, encode):
    ct_small.PixelData = encapsulate([b"\x00\x01" * 500])
    ct_small["PixelData"].VR = "OB"
    ct_small.file_meta.TransferSyntaxUID = JPEG2000Lossless

    with pytest.raises(DicomError) as caught:
        read_ct(encode(ct_small))
    assert caught.value.code == "invalid_pixel_data"


@pytest.mark.parametrize("damage", ["cut", "zeroed"])
def test_damaged_codestream_is_invalid_pixel_data(ct_small, encode, damage):
    ct_small = compressed(ct_small, JPEG2000Lossless)
    frame = bytearray(next(generate_frames(ct_small.PixelData, number_of_frames=1)))
    if damage == "cut":
        frame = frame[:300]  # the main header survives, most tile data is gone
    else:
        frame[200:] = bytes(len(frame) - 200)
    ct_small.PixelData = encapsulate([bytes(frame)])

    with pytest.raises(DicomError) as caught:
        read_ct(encode(ct_small))
    assert caught.value.code == "invalid_pixel_data"
