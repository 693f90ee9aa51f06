"""`fsd demo`: data, search, training, evaluation, export and a served query, end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def demo_command(
    config: Annotated[Path, typer.Option("--config", "-c")] = Path("configs/demo.yaml"),
    out: Annotated[Path, typer.Option("--out", "-o")] = Path("runs/demo"),
) -> None:
    """Run the whole pipeline on synthetic data and query the served model (see `make demo`)."""
    from fsd.demo import run_demo

    run_demo(config, out)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
