"""`fsd predict`: DICOM files or DeepLesion PNGs in, JSON and annotated PNGs out.

Uses the exported model and the same input preparation as the server (:mod:`fsd.inference`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from fsd.errors import FsdError


def _parse_spacing(text: str | None) -> tuple[float, float, float] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise FsdError(f"--spacing must be three numbers X,Y,Z in mm, got {text!r}") from None
    if len(values) != 3 or min(values) <= 0:
        raise FsdError(f"--spacing must be three positive numbers X,Y,Z in mm, got {text!r}")
    return values  # type: ignore[return-value]


def predict_files(model_dir: Path, files: list[Path], out: Path, device: str = "auto", spacing: str | None = None, min_score: float = 0.05) -> list[dict]:
    """Run the exported model on files; writes predictions.json and one PNG per slice into ``out``."""
    from fsd.artifacts import load_exported
    from fsd.device import resolve_device
    from fsd.inference import detections_to_result, run_detector, slice_inputs_from_ct, slice_inputs_from_png
    from fsd.inference.overlay import render_detections
    from fsd.io.dicom import read_ct_file
    from fsd.io.png import read_deeplesion_png

    missing = [str(f) for f in files if not Path(f).is_file()]
    if missing:
        raise FsdError(f"file(s) not found: {', '.join(missing)}")
    target = resolve_device(device)
    model = load_exported(model_dir, target)
    pngs = [f for f in files if f.suffix.lower() == ".png"]
    dicoms = [f for f in files if f.suffix.lower() != ".png"]
    slices, sources = [], []
    for path in dicoms:
        for ct_slice in read_ct_file(path):
            slices.append(ct_slice)
            sources.append(str(path))
    inputs = slice_inputs_from_ct(slices, model.preprocess, sources) if slices else []
    inputs += slice_inputs_from_png(pngs, model.preprocess, _parse_spacing(spacing)) if pngs else []
    detections = run_detector(model.module, [i.image for i in inputs], target)
    results = [detections_to_result(d, i, model.class_names, min_score) for d, i in zip(detections, inputs)]
    out.mkdir(parents=True, exist_ok=True)
    hu_by_key = {(s.sop_instance_uid, s.frame): s.hu for s in slices}
    for index, (result, slice_input) in enumerate(zip(results, inputs)):
        key = (slice_input.sop_instance_uid, slice_input.frame)
        hu = hu_by_key[key] if key in hu_by_key else read_deeplesion_png(slice_input.source)
        stem = Path(slice_input.source).stem
        result["overlay_png"] = str(render_detections(hu, result, out / f"{index:03d}_{stem}_f{slice_input.frame}.png"))
    document = {"model": {"name": model.name, "version": model.version}, "results": results}
    (out / "predictions.json").write_text(json.dumps(document, indent=2) + "\n")
    return results


def predict_command(
    model: Annotated[Path, typer.Option("--model", "-m", help="Exported model directory (model.ts + model.json).")],
    files: Annotated[list[Path], typer.Argument(help="DICOM files and/or DeepLesion PNG key slices.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory for predictions.json and PNGs.")] = Path("predictions"),
    device: Annotated[str, typer.Option("--device")] = "auto",
    spacing: Annotated[Optional[str], typer.Option("--spacing", help="X,Y,Z mm for PNGs outside a DeepLesion tree.")] = None,
    min_score: Annotated[float, typer.Option("--min-score", min=0.0, max=1.0)] = 0.05,
) -> None:
    """Detect lesions in DICOM files or DeepLesion PNGs with an exported model."""
    results = predict_files(model, files, out, device, spacing, min_score)
    count = sum(len(r["detections"]) for r in results)
    typer.echo(f"{len(results)} slice(s), {count} detection(s) with score >= {min_score}; see {out / 'predictions.json'}")


def register(app: typer.Typer) -> None:
    app.command("predict")(predict_command)
