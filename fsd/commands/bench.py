"""`fsd bench ...`: model complexity, accuracy side by side with baselines, and speed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(help="Benchmarks (results belong in docs/benchmarks.md).", no_args_is_help=True)


@app.command("complexity")
def complexity_command(
    config: Annotated[Path, typer.Option("--config", "-c")] = Path("configs/synth_bench.yaml"),
    genotype: Annotated[Optional[Path], typer.Option("--genotype", "-g", help="Searched genotype (default: the hand-written one).")] = None,
    size: Annotated[int, typer.Option("--size", min=64)] = 512,
) -> None:
    """Parameters and FLOPs of FSD vs the ResNet-50/18-FPN baselines (markdown table)."""
    from fsd.bench.complexity import complexity_markdown, complexity_table
    from fsd.config import load_config
    from fsd.models import load_genotype

    loaded = load_config(config)
    rows = complexity_table(loaded, load_genotype(genotype) if genotype else None, size)
    typer.echo(complexity_markdown(rows, size, loaded.preprocess.num_slices))


@app.command("accuracy")
def accuracy_command(
    config: Annotated[Path, typer.Option("--config", "-c")] = Path("configs/synth_bench.yaml"),
    out: Annotated[Path, typer.Option("--out", "-o")] = Path("runs/bench_accuracy"),
    arms: Annotated[Optional[str], typer.Option("--arms", help="Comma-separated subset of arms (default: all).")] = None,
    device: Annotated[str, typer.Option("--device")] = "auto",
    overrides: Annotated[Optional[list[str]], typer.Option("--set", help="Config override key=value (repeatable).")] = None,
) -> None:
    """Search once, then train and evaluate FSD, the baselines and the ablations side by side."""
    from fsd.bench.accuracy import ARMS, run_accuracy_benchmark
    from fsd.config import load_config
    from fsd.errors import FsdError

    chosen = [a.strip() for a in arms.split(",")] if arms else list(ARMS)
    unknown = [a for a in chosen if a not in ARMS]
    if unknown:
        raise FsdError(f"unknown arm(s) {', '.join(unknown)}; choose from {', '.join(ARMS)}")
    typer.echo(run_accuracy_benchmark(load_config(config, overrides), out, chosen, device))
