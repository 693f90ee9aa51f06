"""`generate_dataset`: write a synthetic data set in DeepLesion's exact on-disk layout.

    OUT/DL_info.csv                      one row per lesion, DeepLesion's 18 columns
    OUT/Images_png/{folder}/{slice}.png  16-bit PNG, HU + 32768, slices around each key slice
    OUT/dicom/{folder}/{slice}.dcm       the same slices as a CT DICOM series (``dicom=True``)
    OUT/synth_info.json                  how the set was made (marks the folder as ours)

Deviation from DeepLesion (documented): ``type_all=True`` writes the true lesion type on train
lesions too, for multi-type experiments; by default train lesions get -1 like the real file.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fsd.constants import lesion_type_name
from fsd.data.synth.csv_rows import lesion_row, write_dl_info
from fsd.data.synth.dicom_series import series_identity, series_template, slice_path, write_slice
from fsd.data.synth.keyslices import KeySlice, plan_key_slices
from fsd.data.synth.patient import PatientPlan, plan_patient
from fsd.data.synth.volume import disk_ranges, range_of, render_slice
from fsd.errors import DataError
from fsd.io.png import write_deeplesion_png
from fsd.progress import progress_bar

MARKER = "synth_info.json"
#: bumped whenever the same arguments would write different data (2: body-anchored z)
GENERATOR_VERSION = 2
SPLIT_NAMES = {1: "train", 2: "val", 3: "test"}
_OUTPUTS = ("Images_png", "dicom", "DL_info.csv", MARKER)


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`generate_dataset` wrote."""

    root: Path
    csv_path: Path
    images_dir: Path
    dicom_dir: Path | None
    patients: int
    series: int
    key_slices: int
    lesions: int
    slices: int
    patients_per_split: dict[str, int] = field(default_factory=dict)
    key_slices_per_split: dict[str, int] = field(default_factory=dict)
    lesions_per_split: dict[str, int] = field(default_factory=dict)
    lesions_per_type: dict[str, int] = field(default_factory=dict)


def split_codes(patients: int, seed: int) -> list[int]:
    """Train_Val_Test code (1/2/3) of patients 1..N: about 70/15/15 by a seeded shuffle, with
    every split non-empty from three patients on (two patients: one train, one test)."""
    if patients >= 3:
        n_val = max(1, round(0.15 * patients))
        n_test = max(1, round(0.15 * patients))
    else:
        n_val, n_test = 0, patients - 1
    codes = [1] * (patients - n_val - n_test) + [2] * n_val + [3] * n_test
    order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,))).permutation(patients)
    return [codes[position] for position in np.argsort(order)]


def check_arguments(out: Path, patients: int, size: int, seed: int) -> None:
    """Raise DataError with a clear message for arguments the generator cannot honour."""
    if patients < 1:
        raise DataError(f"--patients must be at least 1, got {patients}")
    if patients > 999_999:
        raise DataError(f"--patients must be at most 999999 (6-digit patient numbers), got {patients}")
    if size < 64 or size % 16:
        raise DataError(f"--size must be a multiple of 16 and at least 64, got {size}")
    if seed < 0:
        raise DataError(f"--seed must be a non-negative integer, got {seed}")
    if out.exists() and not out.is_dir():
        raise DataError(f"output path {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise DataError(
            f"output directory {out} is not empty and was not written by `fsd data synth`; "
            "choose a new or empty directory"
        )


def check_generated(root: Path, patients: int, size: int, seed: int, type_all: bool) -> None:
    """Raise DataError when ``root`` holds a synthetic set made by another generator version or
    with other arguments than these (the data a config asks for is not the data it would get)."""
    marker = root / MARKER
    if not marker.is_file():
        return
    try:
        info = json.loads(marker.read_text())
        made = info["arguments"]
        version = info.get("version")
    except (ValueError, KeyError, TypeError):
        raise DataError(f"{marker} is unreadable; delete {root} to generate the data again") from None
    wanted = {"patients": patients, "size": size, "seed": seed, "type_all": type_all}
    differ = {key: (made.get(key), value) for key, value in wanted.items() if made.get(key) != value}
    if version != GENERATOR_VERSION or differ:
        details = [f"{key} {old!r} (asked {new!r})" for key, (old, new) in differ.items()]
        if version != GENERATOR_VERSION:
            details.insert(0, f"generator version {version!r} (this code writes {GENERATOR_VERSION})")
        raise DataError(
            f"{root} holds synthetic data made with other settings: {', '.join(details)}; delete {root} "
            f"to generate it again with the configured settings, or point data.root elsewhere"
        )


def _clear_previous(out: Path) -> None:
    """Remove what an earlier run wrote, so the new set is exactly what this run makes."""
    for name in _OUTPUTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _write_series(
    out: Path, patient: PatientPlan, keys: list[KeySlice], seed: int, dicom: bool
) -> tuple[int, dict[int, tuple[int, int]]]:
    """Render and write the series' slices on disk; returns (slices written, key -> Slice_range)."""
    series = keys[0].series
    ranges = disk_ranges(series, [key.index for key in keys])
    lesions = [measured.lesion for key in keys for measured in key.lesions]
    identity = series_identity(seed, series, patient.anatomy.sex, keys[0].window) if dicom else None
    template = series_template(series, identity) if identity is not None else None
    written = 0
    for first, last in ranges:
        for index in range(first, last + 1):
            hu = render_slice(patient.anatomy, series, index, lesions, seed)
            write_deeplesion_png(out / "Images_png" / series.folder / f"{index:03d}.png", hu)
            if identity is not None and template is not None:
                write_slice(slice_path(out, series, index), template, series, identity, index, hu)
            written += 1
    return written, {key.index: range_of(ranges, key.index) for key in keys}


def generate_dataset(
    out: Path,
    patients: int,
    size: int = 512,
    seed: int = 0,
    dicom: bool = False,
    type_all: bool = False,
    progress: bool = True,
) -> SynthSummary:
    """Write ``patients`` synthetic patients under ``out`` (see the module docstring)."""
    out = Path(out)
    check_arguments(out, patients, size, seed)
    out.mkdir(parents=True, exist_ok=True)
    _clear_previous(out)
    splits = split_codes(patients, seed)
    rows: list[list[str]] = []
    counts: Counter[str] = Counter()
    per_split: dict[str, Counter[str]] = {name: Counter() for name in SPLIT_NAMES.values()}
    per_type: Counter[str] = Counter()
    for patient_index in progress_bar(
        range(1, patients + 1), desc="synthetic patients", unit="patient", disable=not progress
    ):
        patient, rng = plan_patient(seed, patient_index, size)
        split = splits[patient_index - 1]
        split_name = SPLIT_NAMES[split]
        per_split[split_name]["patients"] += 1
        annotated = False
        for position, series in enumerate(patient.series):
            last_chance = not annotated and position == len(patient.series) - 1
            keys = plan_key_slices(rng, patient, series, seed, required=last_chance)
            if not keys:
                continue
            annotated = True
            written, slice_ranges = _write_series(out, patient, keys, seed, dicom)
            counts["series"] += 1
            counts["slices"] += written
            for key in keys:
                counts["key_slices"] += 1
                per_split[split_name]["key_slices"] += 1
                for measured in key.lesions:
                    rows.append(
                        lesion_row(
                            key, measured, split, patient.anatomy.sex, type_all, slice_ranges[key.index]
                        )
                    )
                    counts["lesions"] += 1
                    per_split[split_name]["lesions"] += 1
                    per_type[lesion_type_name(measured.lesion.type_id)] += 1
    csv_path = out / "DL_info.csv"
    write_dl_info(csv_path, rows)
    summary = SynthSummary(
        root=out,
        csv_path=csv_path,
        images_dir=out / "Images_png",
        dicom_dir=out / "dicom" if dicom else None,
        patients=patients,
        series=counts["series"],
        key_slices=counts["key_slices"],
        lesions=counts["lesions"],
        slices=counts["slices"],
        patients_per_split={name: c["patients"] for name, c in per_split.items()},
        key_slices_per_split={name: c["key_slices"] for name, c in per_split.items()},
        lesions_per_split={name: c["lesions"] for name, c in per_split.items()},
        lesions_per_type=dict(sorted(per_type.items())),
    )
    _write_marker(out, summary, size, seed, dicom, type_all)
    return summary


def _write_marker(
    out: Path, summary: SynthSummary, size: int, seed: int, dicom: bool, type_all: bool
) -> None:
    info = {
        "generator": "fsd data synth",
        "version": GENERATOR_VERSION,
        "arguments": {
            "patients": summary.patients,
            "size": size,
            "seed": seed,
            "dicom": dicom,
            "type_all": type_all,
        },
        "counts": {
            "series": summary.series,
            "key_slices": summary.key_slices,
            "lesions": summary.lesions,
            "slices": summary.slices,
        },
        "patients_per_split": summary.patients_per_split,
        "lesions_per_split": summary.lesions_per_split,
        "lesions_per_type": summary.lesions_per_type,
        "notes": "Synthetic data for research use only. Coarse_lesion_type is -1 on train lesions "
        "like DeepLesion unless type_all is true.",
    }
    (out / MARKER).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
