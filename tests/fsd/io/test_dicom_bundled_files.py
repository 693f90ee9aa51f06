"""Every file pydicom ships reads as CT with the HU pydicom computes, or fails with a fitting code."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.data.download import get_url_map
from pydicom.pixels import apply_modality_lut

from fsd.io.dicom import CT_SOP_CLASSES, DicomError, read_ct

DATA_ROOT = Path(pydicom.data.__file__).parent / "test_files"


def bundled_files() -> list[Path]:
    """Files shipped with pydicom, plus downloadable ones only if already cached (never download)."""
    paths = {Path(path) for path in get_testdata_files() if Path(path).is_file()}
    for name in get_url_map():
        local = get_testdata_file(name, download=False)
        if local is not None:
            paths.add(Path(local))
    return sorted(paths)


def file_id(path: Path) -> str:
    return str(path.relative_to(DATA_ROOT)) if path.is_relative_to(DATA_ROOT) else path.name


def what_pydicom_sees(path: Path) -> tuple[str, pydicom.Dataset | None]:
    """Independent classification with plain pydicom: 'ct', 'not_ct' or 'unclear'."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, force=True)
            sop_class = ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID") or None
    except Exception:
        return "unclear", None
    if sop_class in CT_SOP_CLASSES and "PixelData" in ds and "Rows" in ds:
        return "ct", ds
    if sop_class is not None and sop_class not in CT_SOP_CLASSES:
        return "not_ct", ds
    return "unclear", ds


FILES = bundled_files()


def test_the_bundled_corpus_has_real_ct_and_non_ct_files():
    kinds = [what_pydicom_sees(path)[0] for path in FILES]
    assert len(FILES) > 100
    assert kinds.count("ct") >= 5 and kinds.count("not_ct") >= 50


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("path", FILES, ids=file_id)
def test_bundled_file_reads_as_ct_or_fails_cleanly(path):
    kind, ds = what_pydicom_sees(path)
    data = path.read_bytes()

    if kind == "ct":
        assert ds is not None
        slices = read_ct(data)
        stored = ds.pixel_array
        expected = apply_modality_lut(stored, ds).astype(np.float32).reshape(len(slices), *stored.shape[-2:])
        for number, ct in enumerate(slices, start=1):
            assert ct.frame == number
            assert ct.hu.dtype == np.float32
            np.testing.assert_array_equal(ct.hu, expected[number - 1])
            assert ct.sop_instance_uid == ds.SOPInstanceUID
            assert ct.spacing_mm == pytest.approx(tuple(float(v) for v in ds.PixelSpacing))
        return

    with pytest.raises(DicomError) as caught:
        read_ct(data)
    if kind == "not_ct":
        assert caught.value.code == "not_ct"
    else:
        assert caught.value.code in {"not_dicom", "missing_tag", "no_pixels", "truncated", "invalid_tag"}
