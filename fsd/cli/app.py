"""The `fsd` command: one typer app whose command groups live beside it in ``fsd/cli/``."""

from __future__ import annotations

import sys

import typer

from fsd.errors import FsdError

app = typer.Typer(
    name="fsd",
    help="FSD lesion detection: data, architecture search, training, evaluation, export, serving.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    """Attach the command groups; each module owns one job and imports heavy packages lazily."""
    from fsd.cli import data, demo, pipeline, predict
    from fsd.cli.bench import commands as bench
    from service.cli import serve_command

    app.add_typer(data.app, name="data")
    pipeline.register(app)
    predict.register(app)
    app.add_typer(bench.app, name="bench")
    demo.register(app)
    app.command("serve")(serve_command)


_register()


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the app and turns FsdError into a one-line message and exit code 2."""
    try:
        app(args=argv, prog_name="fsd")
    except FsdError as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        sys.exit(130)
