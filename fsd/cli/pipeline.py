"""`fsd search | train | evaluate | export`: the offline pipeline's commands."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from fsd.errors import FsdError

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="YAML config (see configs/).")]
OutOption = Annotated[Path, typer.Option("--out", "-o", help="Run directory to write.")]
ResumeOption = Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint.")]
DeviceOption = Annotated[str, typer.Option("--device", help="auto (GPU when available), cpu, cuda, cuda:N.")]
SetOption = Annotated[
    Optional[list[str]], typer.Option("--set", help="Override a config value, e.g. --set train.epochs=2 (repeatable).")
]


def search_command(config: ConfigOption, out: OutOption, resume: ResumeOption = False, device: DeviceOption = "auto", overrides: SetOption = None) -> None:
    """Differentiable architecture search; writes genotype.json and the search plots."""
    from fsd.config import load_config

    loaded = load_config(config, overrides)  # before torch is imported: a bad config fails at once
    from fsd.cli.data_setup import ensure_data
    from fsd.cli.reproducible import apply_reproducibility
    from search.loop import search

    apply_reproducibility(loaded, device)
    ensure_data(loaded, device)
    result = search(loaded, out, resume=resume, device=device)
    if os.environ.get("RANK", "0") != "0":
        return
    typer.echo(f"genotype: {result.genotype_path} (search took {result.seconds:.0f} s)")


def train_command(
    config: ConfigOption,
    out: OutOption,
    genotype: Annotated[Optional[Path], typer.Option("--genotype", "-g", help="genotype.json from `fsd search`.")] = None,
    baseline: Annotated[Optional[str], typer.Option("--baseline", help="Train a baseline instead: resnet50_fpn or resnet18_fpn.")] = None,
    resume: ResumeOption = False,
    device: DeviceOption = "auto",
    overrides: SetOption = None,
) -> None:
    """Retrain a derived network (or a baseline) from scratch."""
    from fsd.config import load_config

    if (genotype is None) == (baseline is None):
        raise FsdError("give exactly one of --genotype GENOTYPE.json or --baseline NAME")
    loaded = load_config(config, overrides)  # before torch is imported: a bad config fails at once
    from fsd.cli.data_setup import ensure_data
    from fsd.cli.reproducible import apply_reproducibility
    from fsd.engine.trainer import train
    from fsd.models import architecture_record, load_genotype

    architecture = architecture_record(genotype=load_genotype(genotype)) if genotype else architecture_record(baseline=baseline)
    if baseline is not None:
        from fsd.models.baselines import BASELINES

        if baseline not in BASELINES:
            raise FsdError(f"unknown baseline {baseline!r}; choose one of {', '.join(BASELINES)}")
    apply_reproducibility(loaded, device)
    ensure_data(loaded, device)
    result = train(loaded, architecture, out, resume=resume, device=device)
    if os.environ.get("RANK", "0") != "0":
        return
    best = f"{result.best_metric:.4f}" if result.best_metric is not None else "n/a"
    typer.echo(f"trained {result.iterations} iterations; best validation FROC mean (0.5-4 FPs): {best}; checkpoints in {out}")


def evaluate_command(
    model: Annotated[Path, typer.Option("--model", "-m", help="Checkpoint (.pt) or exported model directory.")],
    data: Annotated[Path, typer.Option("--data", "-d", help="DeepLesion-layout data root.")],
    split: Annotated[str, typer.Option("--split", help="train, val or test.")] = "test",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Where report.json and froc.png go (default: beside the model).")] = None,
    device: DeviceOption = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 4,
) -> None:
    """DeepLesion FROC (0.5-16 FPs/image), AP/AP50/AP75, per-type AP and per-size sensitivity."""
    from fsd.engine.evaluation import evaluate_model

    if split not in ("train", "val", "test"):
        raise FsdError(f"--split must be train, val or test, got {split!r}")
    report = evaluate_model(model, data, split=split, out_dir=out, device=device, batch_size=batch_size)
    _print_report(report)


def _print_report(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{report['model']['name']} on {report['split']} ({report['num_images']} images, {report['num_lesions']} lesions)")
    for fp in report["froc"]:
        table.add_column(f"sens@{fp}")
    table.add_column("mean 0.5-4")
    table.add_column("AP")
    table.add_column("AP50")
    table.add_row(
        *[f"{100 * v:.1f}" for v in report["froc"].values()],
        f"{100 * report['froc_mean_0.5_4']:.1f}",
        f"{100 * report['AP']:.1f}",
        f"{100 * report['AP50']:.1f}",
    )
    Console().print(table)
    if report.get("per_type_AP50"):
        types = Table(title="lesion types: AP50 with each detection scored P(lesion) x P(type | lesion); recall among found lesions")
        types.add_column("")
        names = list(report["per_type_AP50"])
        for name in names:
            types.add_column(name)
        types.add_column("mean / accuracy")
        types.add_row("AP50", *[_percent(report["per_type_AP50"][n]) for n in names], _percent(report["mAP50_types"]))
        types.add_row("recall", *[_percent(report["type_recall"].get(n)) for n in names], _percent(report["type_accuracy"]))
        Console().print(types)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def export_command(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="Training checkpoint (best.pt or last.pt).")],
    out: OutOption,
    report: Annotated[Optional[Path], typer.Option("--report", help="report.json from `fsd evaluate` (default: beside the checkpoint).")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Model name in the card (default: the config's name).")] = None,
    version: Annotated[str, typer.Option("--version", help="Model version in the card.")] = "0.1.0",
) -> None:
    """TorchScript model.ts + model.json model card, verified against the eager model."""
    from fsd.export import export_model

    result = export_model(checkpoint, out, report=report, name=name, version=version)
    typer.echo(f"exported {result.model_path} and {result.card_path} (scripted vs eager max difference {result.max_abs_difference:.2g})")


def register(app: typer.Typer) -> None:
    app.command("search")(search_command)
    app.command("train")(train_command)
    app.command("evaluate")(evaluate_command)
    app.command("export")(export_command)
