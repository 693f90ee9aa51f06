"""`render_samples`: a grid of key slices with their ground-truth boxes, to check data by eye.

Works on any DeepLesion-layout folder (synthetic or real): each panel is a key slice in its
DICOM window with the boxes from DL_info.csv, labelled with the lesion type (or "lesion" when
the csv leaves it untyped), titled with the file name.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from fsd.constants import lesion_type_name
from fsd.data.dl_info import SPLIT_CODES, KeySliceRecord, read_dl_info
from fsd.errors import DataError
from fsd.io.png import read_deeplesion_png

_PANEL_INCHES = 3.4
_DPI = 90


def _label(type_id: int) -> str:
    return lesion_type_name(type_id).replace("_", " ") if 1 <= type_id <= 8 else "lesion"


def choose_records(
    records: list[KeySliceRecord], count: int, split: str | None, seed: int
) -> list[KeySliceRecord]:
    """Up to ``count`` key slices of a split (all splits when None), chosen at random (seeded) but
    spread over the body from head to feet (by normalized z), and ordered that way."""
    if count < 1:
        raise DataError(f"--count must be at least 1, got {count}")
    if split is not None:
        if split not in SPLIT_CODES:
            raise DataError(f"--split must be one of {', '.join(SPLIT_CODES)}, got {split!r}")
        records = [r for r in records if r.split == SPLIT_CODES[split]]
    if not records:
        raise DataError(f"no key slices to show{f' in split {split!r}' if split else ''}")
    rng = np.random.default_rng(seed)
    by_height = sorted(records, key=lambda r: (r.lesions[0].location[2] if r.lesions else 0.5, r.file_name))
    if len(by_height) <= count:
        return by_height
    # one random key slice from each of ``count`` consecutive bands of the body
    edges = np.linspace(0, len(by_height), count + 1).astype(int)
    return [by_height[int(rng.integers(low, high))] for low, high in zip(edges[:-1], edges[1:])]


def render_samples(
    root: Path, out_png: Path, count: int = 8, split: str | None = None, seed: int = 0
) -> Path:
    """Draw ``count`` key slices of the data set at ``root`` into ``out_png``; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    root = Path(root)
    records = choose_records(read_dl_info(root / "DL_info.csv"), count, split, seed)
    columns = min(4, len(records))
    rows = math.ceil(len(records) / columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(columns * _PANEL_INCHES, rows * (_PANEL_INCHES + 0.25)), squeeze=False
    )
    for axis in axes.flat:
        axis.axis("off")
    for axis, record in zip(axes.flat, records):
        hu = read_deeplesion_png(record.slice_path(root, record.key_slice))
        low, high = record.window
        axis.imshow(hu, cmap="gray", vmin=low, vmax=high, interpolation="bilinear")
        for lesion in record.lesions:
            x1, y1, x2, y2 = lesion.box
            axis.add_patch(
                Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="#ff3b30", linewidth=1.2)
            )
            axis.text(x1, y1 - 2, _label(lesion.lesion_type), color="#ffd60a", fontsize=7, va="bottom")
        axis.set_title(f"{record.file_name}  [{low:g}, {high:g}]", fontsize=7.5)
    figure.tight_layout(pad=0.4)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_png, dpi=_DPI)
    plt.close(figure)
    return out_png
