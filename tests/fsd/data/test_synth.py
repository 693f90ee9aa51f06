"""The synthetic generator writes DeepLesion's exact layout, with sensible, reproducible content."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fsd.data.dl_info import DL_INFO_COLUMNS, read_dl_info
from fsd.data.synth import generate_dataset
from fsd.data.synth.generate import split_codes
from fsd.data.synth.lesions import LUNG, MIN_CONTRAST_HU, sample_appearance, sample_diameter
from fsd.data.synth.recist import measure
from fsd.errors import DataError
from fsd.io.png import read_deeplesion_png

SIZE = 128
SEED = 5
PATIENTS = 3

NUMBER = r"-?\d+(\.\d+)?"


def numbers(text: str) -> list[float]:
    return [float(part) for part in text.split(", ")]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "set"
    generate_dataset(root, patients=PATIENTS, size=SIZE, seed=SEED, progress=False)
    return root


@pytest.fixture(scope="module")
def rows(dataset: Path) -> list[dict[str, str]]:
    with (dataset / "DL_info.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_header_is_deeplesions_18_columns_in_order(dataset: Path) -> None:
    header = (dataset / "DL_info.csv").read_text().splitlines()[0]
    assert header.split(",") == list(DL_INFO_COLUMNS)
    assert len(DL_INFO_COLUMNS) == 18


def test_every_cell_has_deeplesions_value_format(rows: list[dict[str, str]]) -> None:
    assert rows
    for row in rows:
        match = re.fullmatch(r"(\d{6})_(\d{2})_(\d{2})_(\d{3})\.png", row["File_name"])
        assert match, row["File_name"]
        patient, study, series, key = (int(g) for g in match.groups())
        assert (int(row["Patient_index"]), int(row["Study_index"]), int(row["Series_ID"])) == (
            patient,
            study,
            series,
        )
        assert int(row["Key_slice_index"]) == key >= 1
        list_cells = {
            "Measurement_coordinates": 8,
            "Bounding_boxes": 4,
            "Lesion_diameters_Pixel_": 2,
            "Normalized_lesion_location": 3,
            "Slice_range": 2,
            "Spacing_mm_px_": 3,
            "Image_size": 2,
            "DICOM_windows": 2,
        }
        for column, count in list_cells.items():
            assert re.fullmatch(rf"{NUMBER}(, {NUMBER}){{{count - 1}}}", row[column]), (column, row[column])
        assert row["Image_size"] == f"{SIZE}, {SIZE}"
        assert row["Possibly_noisy"] in ("0", "1")
        assert row["Patient_gender"] in ("M", "F")
        assert 18 <= int(row["Patient_age"]) <= 100
        assert row["Train_Val_Test"] in ("1", "2", "3")
        low, high = numbers(row["DICOM_windows"])
        assert low < high
        x_spacing, y_spacing, interval = numbers(row["Spacing_mm_px_"])
        # 0.6-1.0 mm at 512 px, scaled by 512/size so the field of view stays realistic
        assert x_spacing == y_spacing and 0.6 * 512 / SIZE - 1e-6 <= x_spacing <= 1.0 * 512 / SIZE + 1e-6
        assert 1.0 <= interval <= 5.0
        assert all(0.0 <= v <= 1.0 for v in numbers(row["Normalized_lesion_location"]))


def test_quoting_matches_the_real_file(dataset: Path) -> None:
    line = (dataset / "DL_info.csv").read_text().splitlines()[1]
    assert re.match(
        r'^\d{6}_\d{2}_\d{2}_\d{3}\.png,\d+,\d+,\d+,\d+,"[^"]+","[^"]+","[^"]+","[^"]+",-?\d,[01],"\d+, \d+",',
        line,
    )


def test_boxes_are_recist_extent_plus_5_pixels_inside_the_image(rows: list[dict[str, str]]) -> None:
    for row in rows:
        points = np.array(numbers(row["Measurement_coordinates"])).reshape(4, 2)
        x1, y1, x2, y2 = numbers(row["Bounding_boxes"])
        expected = [
            max(points[:, 0].min() - 5, 1),
            max(points[:, 1].min() - 5, 1),
            min(points[:, 0].max() + 5, SIZE),
            min(points[:, 1].max() + 5, SIZE),
        ]
        assert [x1, y1, x2, y2] == pytest.approx(expected, abs=2e-3)
        assert 1 <= x1 < x2 <= SIZE and 1 <= y1 < y2 <= SIZE


def test_diameters_match_perpendicular_recist_axes(rows: list[dict[str, str]]) -> None:
    for row in rows:
        p1, p2, p3, p4 = np.array(numbers(row["Measurement_coordinates"])).reshape(4, 2)
        long_px, short_px = numbers(row["Lesion_diameters_Pixel_"])
        assert long_px == pytest.approx(np.linalg.norm(p2 - p1), rel=1e-3)
        assert short_px == pytest.approx(np.linalg.norm(p4 - p3), rel=1e-3)
        assert 0 < short_px <= long_px + 1e-6
        cosine = abs(np.dot(p2 - p1, p4 - p3)) / (long_px * short_px)
        assert cosine < 0.02


def test_types_follow_deeplesion_train_untyped_and_split_by_patient(rows: list[dict[str, str]]) -> None:
    split_of_patient: dict[str, set[str]] = {}
    for row in rows:
        split_of_patient.setdefault(row["Patient_index"], set()).add(row["Train_Val_Test"])
        lesion_type = int(row["Coarse_lesion_type"])
        if row["Train_Val_Test"] == "1":
            assert lesion_type == -1
        else:
            assert 1 <= lesion_type <= 8
    assert all(len(splits) == 1 for splits in split_of_patient.values())
    assert {next(iter(s)) for s in split_of_patient.values()} == {"1", "2", "3"}
    assert len(split_of_patient) == PATIENTS


def test_split_codes_are_about_70_15_15_and_never_empty_from_three_patients() -> None:
    for patients in range(3, 40):
        codes = split_codes(patients, seed=0)
        assert set(codes) == {1, 2, 3}
        assert codes.count(1) == max(codes.count(c) for c in (1, 2, 3))
    codes = split_codes(200, seed=0)
    assert abs(codes.count(1) - 140) <= 2 and abs(codes.count(2) - 30) <= 2
    assert split_codes(10, seed=3) == split_codes(10, seed=3)


def test_type_all_types_train_lesions_too(tmp_path: Path) -> None:
    generate_dataset(tmp_path / "typed", patients=1, size=64, seed=2, type_all=True, progress=False)
    records = read_dl_info(tmp_path / "typed" / "DL_info.csv")
    assert {r.split for r in records} == {1}
    assert all(1 <= lesion.lesion_type <= 8 for r in records for lesion in r.lesions)
    info = json.loads((tmp_path / "typed" / "synth_info.json").read_text())
    assert info["arguments"]["type_all"] is True


def test_slice_range_files_exist_as_16_bit_pngs(dataset: Path, rows: list[dict[str, str]]) -> None:
    for row in rows:
        folder = dataset / "Images_png" / row["File_name"][:12]
        first, last = (int(v) for v in numbers(row["Slice_range"]))
        key = int(row["Key_slice_index"])
        assert first <= key <= last
        for index in range(first, last + 1):
            assert (folder / f"{index:03d}.png").is_file()
        # the range is the whole contiguous block present around the key slice
        assert not (folder / f"{first - 1:03d}.png").exists()
        assert not (folder / f"{last + 1:03d}.png").exists()
        with Image.open(folder / f"{key:03d}.png") as image:
            assert image.mode in ("I;16", "I;16B", "I;16L", "I") and image.size == (SIZE, SIZE)


def test_slices_hold_ct_numbers(dataset: Path, rows: list[dict[str, str]]) -> None:
    hu = read_deeplesion_png(
        dataset / "Images_png" / rows[0]["File_name"][:12] / f"{int(rows[0]['Key_slice_index']):03d}.png"
    )
    assert hu.min() >= -3024 and hu.max() <= 3071
    assert (hu < -900).mean() > 0.1, "air around the body"
    assert ((hu > -200) & (hu < 200)).mean() > 0.1, "soft tissue"


def test_lesions_differ_from_their_surroundings(dataset: Path, rows: list[dict[str, str]]) -> None:
    contrasts = []
    for row in rows:
        # tiny lesions are a few blurred pixels at this test's coarse size; noisy ones are faint on purpose
        if row["Possibly_noisy"] == "1" or numbers(row["Lesion_diameters_Pixel_"])[0] < 6.0:
            continue
        hu = read_deeplesion_png(
            dataset / "Images_png" / row["File_name"][:12] / f"{int(row['Key_slice_index']):03d}.png"
        )
        p1, p2, p3, p4 = np.array(numbers(row["Measurement_coordinates"])).reshape(4, 2) - 1.0
        centre = (p3 + p4) / 2.0
        radius = max(0.3 * np.linalg.norm(p4 - p3), 0.8)
        x1, y1, x2, y2 = (v - 1.0 for v in numbers(row["Bounding_boxes"]))
        yy, xx = np.mgrid[0 : hu.shape[0], 0 : hu.shape[1]]
        core = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= radius**2
        in_box = (xx >= x1) & (xx <= x2) & (yy >= y1) & (yy <= y2)
        extent = np.array([p1, p2, p3, p4])
        inside_extent = (
            (xx >= extent[:, 0].min() - 1)
            & (xx <= extent[:, 0].max() + 1)
            & (yy >= extent[:, 1].min() - 1)
            & (yy <= extent[:, 1].max() + 1)
        )
        ring = in_box & ~inside_extent
        contrasts.append(abs(float(hu[core].mean()) - float(np.median(hu[ring]))))
    assert contrasts
    assert min(contrasts) > 10.0, contrasts


def test_lesion_sizes_are_skewed_small_like_deeplesion() -> None:
    rng = np.random.default_rng(0)
    sizes = np.array([sample_diameter(rng, type_id, 5.0) for type_id in range(1, 9) for _ in range(400)])
    assert sizes.min() >= 5.0 and sizes.max() <= 100.0
    assert 12.0 <= np.median(sizes) <= 25.0
    assert (sizes < 30.0).mean() > 0.7
    assert (sizes > 50.0).mean() > 0.01


def test_measured_sizes_in_the_data_set_are_plausible(rows: list[dict[str, str]]) -> None:
    for row in rows:
        spacing = numbers(row["Spacing_mm_px_"])[0]
        long_mm = numbers(row["Lesion_diameters_Pixel_"])[0] * spacing
        assert 2.5 * spacing <= long_mm <= 110.0


def test_non_noisy_lesions_contrast_with_their_host_and_noisy_ones_do_not() -> None:
    rng = np.random.default_rng(1)
    for type_id in range(1, 9):
        for host in (-850.0, -100.0, 50.0, 105.0, 300.0):
            for _ in range(30):
                look = sample_appearance(rng, type_id, host, noisy=False)
                assert abs(look.hu - host) >= MIN_CONTRAST_HU
                if type_id == LUNG and host < -500:
                    assert look.hu > host + 200
                noisy = sample_appearance(rng, type_id, host, noisy=True)
                assert abs(noisy.hu - host) <= 6.0


def test_recist_of_an_ellipse_gives_its_axes() -> None:
    theta = np.linspace(0, 2 * math.pi, 720, endpoint=False)
    angle = 0.4
    x = 30 * np.cos(theta)
    y = 12 * np.sin(theta)
    polygon = np.stack(
        [50 + x * math.cos(angle) - y * math.sin(angle), 60 + x * math.sin(angle) + y * math.cos(angle)],
        axis=1,
    )
    recist = measure(polygon)
    assert recist.long_px == pytest.approx(60.0, rel=1e-3)
    assert recist.short_px == pytest.approx(24.0, rel=2e-3)
    assert recist.box(200, 200) == pytest.approx(
        (
            recist.points()[:, 0].min() - 5,
            recist.points()[:, 1].min() - 5,
            recist.points()[:, 0].max() + 5,
            recist.points()[:, 1].max() + 5,
        )
    )


def _digest(root: Path) -> dict[str, str]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_same_seed_gives_byte_identical_output(tmp_path: Path, dataset: Path) -> None:
    again = tmp_path / "again"
    generate_dataset(again, patients=PATIENTS, size=SIZE, seed=SEED, progress=False)
    assert _digest(again) == _digest(dataset)


def test_patient_is_the_same_whatever_the_count_and_seeds_differ(tmp_path: Path, dataset: Path) -> None:
    single = tmp_path / "single"
    generate_dataset(single, patients=1, size=SIZE, seed=SEED, progress=False)
    mine = {k: v for k, v in _digest(single).items() if k.startswith("Images_png/")}
    theirs = {k: v for k, v in _digest(dataset).items() if k.startswith("Images_png/000001_")}
    assert mine and mine == theirs
    other = tmp_path / "other"
    generate_dataset(other, patients=1, size=SIZE, seed=SEED + 1, progress=False)
    assert (other / "DL_info.csv").read_bytes() != (single / "DL_info.csv").read_bytes()


def test_rerun_replaces_a_previous_output_but_never_a_foreign_folder(tmp_path: Path) -> None:
    root = tmp_path / "set"
    generate_dataset(root, patients=1, size=64, seed=0, progress=False)
    generate_dataset(root, patients=1, size=64, seed=1, progress=False)
    folders = {p.name for p in (root / "Images_png").iterdir()}
    assert folders == {r.file_name.rsplit("_", 1)[0] for r in read_dl_info(root / "DL_info.csv")}
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not empty"):
        generate_dataset(foreign, patients=1, size=64, progress=False)
    assert (foreign / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"patients": 0}, "--patients must be at least 1"),
        ({"patients": 1, "size": 100}, "multiple of 16"),
        ({"patients": 1, "size": 48}, "at least 64"),
        ({"patients": 1, "seed": -1}, "non-negative"),
    ],
)
def test_invalid_arguments_raise_clear_errors(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        generate_dataset(tmp_path / "x", progress=False, **kwargs)
    assert not (tmp_path / "x").exists()


def test_output_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        generate_dataset(target, patients=1, size=64, progress=False)


def test_reader_accepts_the_generated_csv(dataset: Path, rows: list[dict[str, str]]) -> None:
    records = read_dl_info(dataset / "DL_info.csv")
    assert sum(len(r.lesions) for r in records) == len(rows)
    for record in records:
        assert record.slice_path(dataset, record.key_slice).is_file()
        for lesion in record.lesions:
            x1, y1, x2, y2 = lesion.box
            assert 0 <= x1 < x2 <= SIZE - 1 and 0 <= y1 < y2 <= SIZE - 1


def test_a_folder_made_with_other_settings_or_an_older_generator_is_refused(dataset: Path, tmp_path: Path) -> None:
    from fsd.cli.data_setup import ensure_data
    from fsd.config import FsdConfig
    from fsd.data.synth import check_generated

    check_generated(dataset, PATIENTS, SIZE, SEED, False)  # what it was made with
    with pytest.raises(DataError, match=r"patients 3 \(asked 4\).*delete"):
        check_generated(dataset, 4, SIZE, SEED, False)
    config = FsdConfig.model_validate({"data": {"root": dataset, "synth": {"patients": PATIENTS, "size": SIZE, "seed": SEED + 1, "type_all": False}}})
    with pytest.raises(DataError, match=r"seed 5 \(asked 6\)"):
        ensure_data(config, device="cpu", progress=False)
    old = tmp_path / "old"
    old.mkdir()
    marker = json.loads((dataset / "synth_info.json").read_text())
    marker["version"] = 1
    (old / "synth_info.json").write_text(json.dumps(marker))
    with pytest.raises(DataError, match="generator version 1"):
        check_generated(old, PATIENTS, SIZE, SEED, False)
