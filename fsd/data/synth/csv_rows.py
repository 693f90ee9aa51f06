"""DL_info.csv rows in DeepLesion's exact format: 18 columns, one row per lesion, 1-based pixels.

Numbers are written like the real file (up to 6 significant digits, no exponent); list-valued
cells are comma+space separated and quoted by the csv writer.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

from fsd.data.dl_info import DL_INFO_COLUMNS
from fsd.data.synth.keyslices import KeySlice, MeasuredLesion


def number(value: float) -> str:
    """DeepLesion-style number: 6 significant digits, never in exponent notation."""
    text = f"{value:.6g}"
    if "e" in text or "E" in text:
        text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def numbers(values: Iterable[float]) -> str:
    return ", ".join(number(v) for v in values)


def lesion_row(
    key: KeySlice, lesion: MeasuredLesion, split: int, gender: str, type_all: bool, range_: tuple[int, int]
) -> list[str]:
    """The 18 cells of one lesion of a key slice."""
    series = key.series
    size = series.size
    recist = lesion.recist
    end_points = [
        coordinate + 1.0 for point in (*recist.long_axis, *recist.short_axis) for coordinate in point
    ]
    box = [coordinate + 1.0 for coordinate in recist.box(size, size)]
    lesion_type = lesion.lesion.type_id if (type_all or split != 1) else -1
    return [
        f"{series.folder}_{key.index:03d}.png",
        str(series.patient),
        str(series.study),
        str(series.series),
        str(key.index),
        numbers(end_points),
        numbers(box),
        numbers((recist.long_px, recist.short_px)),
        numbers(lesion.location),
        str(lesion_type),
        "1" if lesion.lesion.noisy else "0",
        f"{range_[0]}, {range_[1]}",
        numbers((series.spacing, series.spacing, series.interval)),
        f"{size}, {size}",
        f"{key.window[0]}, {key.window[1]}",
        gender,
        str(series.age),
        str(split),
    ]


def write_dl_info(path: Path, rows: Sequence[Sequence[str]]) -> None:
    """Write the header and rows (sorted by File_name like the real file)."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(DL_INFO_COLUMNS)
        writer.writerows(sorted(rows, key=lambda row: row[0]))
