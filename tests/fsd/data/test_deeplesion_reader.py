"""DeepLesion reader on a hand-built layout: csv parsing, splits, tasks, boxes, broken files."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from fsd.config import FsdConfig
from fsd.data import DL_INFO_COLUMNS, DeepLesionDataset, read_dl_info
from fsd.data.splits import patient_split, select_records
from fsd.engine.datasets import build_dataset
from fsd.errors import DataError
from fsd.io.png import write_deeplesion_png
from fsd.preprocess import PreprocessConfig

SIZE = 64


def _split(root: Path, split: str, task: str, preprocess: PreprocessConfig | None = None, **data) -> DeepLesionDataset:
    """One split of the layout, opened as every caller opens one (``build_dataset``)."""
    config = FsdConfig.model_validate({"task": task, "data": {"root": root, **data}, "preprocess": preprocess or PreprocessConfig()})
    return build_dataset(config, split)


def _slice(value: float, lesion: tuple[int, int, int, int] | None) -> np.ndarray:
    hu = np.full((SIZE, SIZE), -1000.0)
    hu[4:60, 4:60] = 40.0  # body
    if lesion is not None:
        x1, y1, x2, y2 = lesion
        hu[y1:y2, x1:x2] = value
    return hu


def _row(name: str, patient: int, key: int, box1: tuple[float, ...], lesion_type: int, split: int, noisy: int = 0) -> list[str]:
    x1, y1, x2, y2 = box1
    recist = f"{x1 + 5}, {(y1 + y2) / 2}, {x2 - 5}, {(y1 + y2) / 2}, {(x1 + x2) / 2}, {y1 + 5}, {(x1 + x2) / 2}, {y2 - 5}"
    return [
        name, str(patient), "1", "1", str(key), recist, f"{x1}, {y1}, {x2}, {y2}", f"{x2 - x1 - 10}, {y2 - y1 - 10}",
        "0.5, 0.5, 0.5", str(lesion_type), str(noisy), f"{key - 2}, {key + 2}", "0.8, 0.8, 2", f"{SIZE}, {SIZE}",
        "-175, 275", "F", "50", str(split),
    ]


@pytest.fixture()
def layout(tmp_path: Path) -> Path:
    rows = []
    lesion = (20, 24, 36, 40)  # 0-based pixel extent of the bright square
    box1 = (lesion[0] + 1, lesion[1] + 1, lesion[2] + 1 - 1, lesion[3] + 1 - 1)  # 1-based inclusive
    for patient, split, lesion_type in [(1, 1, -1), (2, 1, -1), (3, 2, 4), (4, 3, 5), (5, 3, 6), (6, 2, 4)]:
        folder = tmp_path / "Images_png" / f"{patient:06d}_01_01"
        for index in range(8, 13):
            write_deeplesion_png(folder / f"{index:03d}.png", _slice(400.0, lesion if 9 <= index <= 11 else None))
        rows.append(_row(f"{patient:06d}_01_01_010.png", patient, 10, box1, lesion_type, split))
    rows.append(_row("000003_01_01_010.png", 3, 10, (40, 40, 50, 50), 4, 2, noisy=1))
    # a key slice whose PNG is missing, and one whose PNG is broken
    rows.append(_row("000007_01_01_010.png", 7, 10, box1, 7, 3))
    broken = tmp_path / "Images_png" / "000008_01_01"
    broken.mkdir(parents=True)
    (broken / "010.png").write_bytes(b"not a png")
    rows.append(_row("000008_01_01_010.png", 8, 10, box1, 8, 3))
    with (tmp_path / "DL_info.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(DL_INFO_COLUMNS)
        writer.writerows(rows)
    return tmp_path


def test_csv_groups_lesions_by_key_slice_and_makes_boxes_zero_based(layout: Path):
    records = read_dl_info(layout / "DL_info.csv")
    assert len(records) == 8
    third = next(r for r in records if r.patient == 3)
    assert len(third.lesions) == 2 and third.lesions[1].noisy
    assert third.lesions[0].box == (20.0, 24.0, 35.0, 39.0)
    assert third.folder == "000003_01_01" and third.slice_range == (8, 12)
    assert third.pixel_spacing_rc == (0.8, 0.8) and third.slice_interval_mm == 2.0


def test_binary_task_uses_the_official_split_and_drops_noisy(layout: Path):
    val = _split(layout, "val", "binary", preprocess=PreprocessConfig(clip_black_border=False))
    assert sorted(r.patient for r in val.records) == [3, 6]
    assert all(not les.noisy for r in val.records for les in r.lesions)
    kept = _split(layout, "val", "binary", drop_noisy=False)
    assert sum(len(r.lesions) for r in kept.records) == 3


def test_missing_key_slice_is_logged_and_skipped(layout: Path, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING):
        test = _split(layout, "test", "binary")
    assert 7 not in [r.patient for r in test.records]
    assert "000007_01_01_010.png" in caplog.text


def test_broken_png_is_logged_and_the_next_item_served(layout: Path, caplog: pytest.LogCaptureFixture):
    test = _split(layout, "test", "binary")
    broken_index = [r.patient for r in test.records].index(8)
    with caplog.at_level(logging.WARNING):
        image, target = test[broken_index]
    assert "000008_01_01_010.png" in caplog.text
    assert image.shape[0] == 3 and target["boxes"].shape == (1, 4)


def test_items_follow_the_contract_and_boxes_land_on_the_lesion(layout: Path):
    config = PreprocessConfig(spacing_mm=0.8, clip_black_border=True, border_margin_px=0)
    dataset = _split(layout, "val", "types", preprocess=config, type_split=(0.0, 1.0, 0.0))
    image, target = dataset[0]
    assert image.dtype == torch.float32 and image.shape[0] == 3
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert set(target) >= {"boxes", "labels", "types", "sizes_mm", "image_id"}
    assert target["labels"].tolist() == [4]
    # black border clipping moved the origin by the body offset (4 px); the box follows
    x1, y1, x2, y2 = target["boxes"][0].tolist()
    assert (x1, y1, x2, y2) == pytest.approx((16.0, 20.0, 31.0, 35.0))
    inside = image[1, int(y1) + 2 : int(y2) - 2, int(x1) + 2 : int(x2) - 2]
    assert float(inside.mean()) > float(image[1, 2:6, 2:6].mean()) + 0.05
    assert float(target["sizes_mm"][0]) == pytest.approx(dataset.records[0].lesions[0].diameters_px[0] * 0.8)


def test_context_channels_come_from_neighbour_slices(layout: Path):
    dataset = _split(layout, "val", "binary", preprocess=PreprocessConfig(clip_black_border=False))
    image, _ = dataset[0]
    # neighbours at -2/+2 mm are slices 9 and 11 (interval 2 mm): the lesion is on all three
    centre = [float(image[c, 30, 27]) for c in range(3)]
    assert centre[0] == pytest.approx(centre[1]) == pytest.approx(centre[2])
    nine = _split(layout, "val", "binary", preprocess=PreprocessConfig(num_slices=5, clip_black_border=False))
    image5, _ = nine[0]
    # +-4 mm reaches slices 8 and 12 which hold no lesion
    assert float(image5[0, 30, 27]) < float(image5[2, 30, 27])


def test_types_task_keeps_typed_lesions_and_splits_by_patient(layout: Path):
    records = read_dl_info(layout / "DL_info.csv")
    splits = {s: select_records(records, s, "types", type_split=(0.5, 0.25, 0.25), split_seed=3) for s in ("train", "val", "test")}
    patients = [set(r.patient for r in splits[s]) for s in splits]
    assert not (patients[0] & patients[1]) and not (patients[0] & patients[2]) and not (patients[1] & patients[2])
    assert all(1 <= les.lesion_type <= 8 for s in splits.values() for r in s for les in r.lesions)
    assert 1 not in set().union(*patients) and 2 not in set().union(*patients)  # untyped train lesions
    again = select_records(records, "train", "types", type_split=(0.5, 0.25, 0.25), split_seed=3)
    assert [r.file_name for r in again] == [r.file_name for r in splits["train"]]


def test_patient_split_gives_every_split_a_patient():
    assignment = patient_split(range(3), (0.7, 0.15, 0.15), seed=0)
    assert sorted(assignment.values()) == ["test", "train", "val"]


def test_bad_csv_is_a_clear_error(tmp_path: Path):
    (tmp_path / "DL_info.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="18 DeepLesion columns"):
        read_dl_info(tmp_path / "DL_info.csv")
    with pytest.raises(DataError, match="not found"):
        read_dl_info(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="split"):
        _split(tmp_path, "holdout", "binary")
