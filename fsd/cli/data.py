"""`fsd data ...`: synthetic DeepLesion-format data and a picture to check it."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

app = typer.Typer(help="Synthetic DeepLesion-format data and data inspection.", no_args_is_help=True)


class SplitName(str, Enum):
    train = "train"
    val = "val"
    test = "test"


@app.command()
def synth(
    out: Path = typer.Option(
        ..., "--out", help="Folder to write (new, empty, or an earlier `fsd data synth` output)."
    ),
    patients: int = typer.Option(..., "--patients", help="Number of synthetic patients (1 or more)."),
    size: int = typer.Option(
        512, "--size", help="Image width and height in pixels (multiple of 16, at least 64)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives byte-identical files."),
    dicom: bool = typer.Option(
        False, "--dicom", help="Also write every slice as a CT DICOM series under OUT/dicom."
    ),
    type_all: bool = typer.Option(
        False,
        "--type-all",
        help="Write the lesion type on train lesions too (DeepLesion leaves them -1); for multi-type experiments.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Generate synthetic CT data in DeepLesion's exact layout (DL_info.csv + Images_png)."""
    from fsd.data.synth import generate_dataset

    summary = generate_dataset(
        out, patients, size=size, seed=seed, dicom=dicom, type_all=type_all, progress=progress
    )
    splits = ", ".join(f"{name} {count}" for name, count in summary.key_slices_per_split.items())
    typer.echo(
        f"wrote {summary.patients} patients, {summary.series} series, {summary.key_slices} key slices "
        f"({splits}), {summary.lesions} lesions, {summary.slices} slices to {summary.root}"
    )
    typer.echo(f"annotations: {summary.csv_path}")
    if summary.dicom_dir is not None:
        typer.echo(f"DICOM series: {summary.dicom_dir}")


@app.command()
def show(
    data: Path = typer.Option(
        ..., "--data", help="A DeepLesion-layout folder (holding DL_info.csv and Images_png)."
    ),
    out: Path = typer.Option(..., "--out", help="PNG file to write."),
    count: int = typer.Option(8, "--count", help="Number of key slices to draw."),
    split: SplitName | None = typer.Option(None, "--split", help="Only key slices of this split."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random choice of key slices."),
) -> None:
    """Draw sample key slices with their ground-truth boxes into one PNG."""
    from fsd.data.synth import render_samples

    path = render_samples(data, out, count=count, split=split.value if split else None, seed=seed)
    typer.echo(f"wrote {path}")
