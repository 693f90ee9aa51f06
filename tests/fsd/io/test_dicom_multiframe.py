"""Multi-frame CT: Enhanced / Legacy Converted Enhanced CT built in memory from CT_small's pixels."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import (
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    LegacyConvertedEnhancedCTImageStorage,
    generate_uid,
)

from fsd.io.dicom import DicomError, group_series, read_ct

Z_POSITIONS = (-70.0, -75.0, -65.0)  # deliberately not in order


def item(**attributes) -> Dataset:
    ds = Dataset()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def enhanced_ct(stored: np.ndarray, sop_class: str = EnhancedCTImageStorage) -> Dataset:
    """An Enhanced CT whose frame k holds ``stored + 10 k`` at z = Z_POSITIONS[k]."""
    frames = np.stack([stored + 10 * k for k in range(len(Z_POSITIONS))]).astype("<i2")
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.Modality = "CT"
    ds.InstanceNumber = 4
    ds.Rows, ds.Columns = stored.shape
    ds.NumberOfFrames = len(Z_POSITIONS)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.SharedFunctionalGroupsSequence = [
        item(
            PixelMeasuresSequence=[item(PixelSpacing=[0.7, 0.8], SliceThickness=2.5)],
            PlaneOrientationSequence=[item(ImageOrientationPatient=[1, 0, 0, 0, 1, 0])],
            PixelValueTransformationSequence=[item(RescaleIntercept=-1024, RescaleSlope=1, RescaleType="HU")],
        )
    ]
    ds.PerFrameFunctionalGroupsSequence = [
        item(
            PlanePositionSequence=[item(ImagePositionPatient=[-100.0, -120.0, z])],
            FrameVOILUTSequence=[item(WindowCenter=40, WindowWidth=400)],
        )
        for z in Z_POSITIONS
    ]
    ds.PixelData = frames.tobytes()
    return ds


@pytest.mark.parametrize("sop_class", [EnhancedCTImageStorage, LegacyConvertedEnhancedCTImageStorage])
def test_enhanced_ct_gives_one_slice_per_frame_with_functional_group_geometry(ct_small, encode, sop_class):
    stored = ct_small.pixel_array
    ds = enhanced_ct(stored, sop_class)

    slices = read_ct(encode(ds))

    assert [ct.frame for ct in slices] == [1, 2, 3]
    assert {ct.number_of_frames for ct in slices} == {3}
    assert {ct.sop_instance_uid for ct in slices} == {ds.SOPInstanceUID}
    for k, ct in enumerate(slices):
        np.testing.assert_array_equal(ct.hu, stored.astype(np.float32) + 10 * k - 1024)
        assert ct.position_mm == (-100.0, -120.0, Z_POSITIONS[k])
        assert ct.spacing_mm == (0.7, 0.8)
        assert ct.orientation == (1, 0, 0, 0, 1, 0)
        assert ct.slice_thickness_mm == 2.5
        assert ct.window == (40.0, 400.0)
        assert ct.instance_number == 4


def test_per_frame_rescale_overrides_the_shared_one(ct_small, encode):
    stored = ct_small.pixel_array
    ds = enhanced_ct(stored)
    ds.PerFrameFunctionalGroupsSequence[1].PixelValueTransformationSequence = [
        item(RescaleIntercept=-1000, RescaleSlope=2, RescaleType="HU")
    ]

    slices = read_ct(encode(ds))

    np.testing.assert_array_equal(slices[0].hu, stored.astype(np.float32) - 1024)
    np.testing.assert_array_equal(slices[1].hu, (stored.astype(np.float32) + 10) * 2 - 1000)


def test_group_series_orders_enhanced_frames_along_z(ct_small, encode):
    slices = read_ct(encode(enhanced_ct(ct_small.pixel_array)))

    (series,) = group_series(slices).values()

    assert [ct.position_mm[2] for ct in series] == sorted(Z_POSITIONS)
    assert [ct.frame for ct in series] == [2, 1, 3]


def test_compressed_enhanced_ct_decodes_every_frame(ct_small, encode):
    stored = ct_small.pixel_array
    ds = enhanced_ct(stored)
    try:
        ds.compress(JPEG2000Lossless)
    except (RuntimeError, NotImplementedError) as error:
        pytest.skip(f"no JPEG 2000 encoder: {error}")

    slices = read_ct(encode(ds))

    for k, ct in enumerate(slices):
        np.testing.assert_array_equal(ct.hu, stored.astype(np.float32) + 10 * k - 1024)


def test_enhanced_ct_without_pixel_measures_is_missing_tag(ct_small, encode):
    ds = enhanced_ct(ct_small.pixel_array)
    del ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence

    with pytest.raises(DicomError) as caught:
        read_ct(encode(ds))
    assert caught.value.code == "missing_tag"
    assert "PixelSpacing" in str(caught.value)


def test_enhanced_ct_without_rescale_is_missing_tag(ct_small, encode):
    ds = enhanced_ct(ct_small.pixel_array)
    del ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence

    with pytest.raises(DicomError) as caught:
        read_ct(encode(ds))
    assert caught.value.code == "missing_tag"
    assert "Rescale" in str(caught.value)


def test_missing_last_native_frame_is_truncated(ct_small, encode):
    ds = enhanced_ct(ct_small.pixel_array)
    ds.PixelData = ds.PixelData[: 2 * 128 * 128 * 2]

    with pytest.raises(DicomError) as caught:
        read_ct(encode(ds))
    assert caught.value.code == "truncated"


def test_fewer_compressed_frames_than_declared_is_truncated(ct_small, encode):
    ds = enhanced_ct(ct_small.pixel_array)
    try:
        ds.compress(JPEG2000Lossless, encapsulate_ext=True)
    except (RuntimeError, NotImplementedError) as error:
        pytest.skip(f"no JPEG 2000 encoder: {error}")
    frames = list(generate_frames(ds.PixelData, number_of_frames=3))
    ds.PixelData = encapsulate(frames[:2], has_bot=True)
    del ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths

    with pytest.raises(DicomError) as caught:
        read_ct(encode(ds))
    assert caught.value.code == "truncated"


def test_classic_multiframe_ct_positions_only_its_first_frame(ct_small, encode):
    stored = ct_small.pixel_array
    ct_small.NumberOfFrames = 2
    ct_small.PixelData = np.stack([stored, stored]).astype("<i2").tobytes()

    slices = read_ct(encode(ct_small))

    assert [ct.frame for ct in slices] == [1, 2]
    assert slices[0].position_mm is not None and slices[1].position_mm is None
    np.testing.assert_array_equal(slices[1].hu, stored.astype(np.float32) - 1024)
