"""The server's command line: ``python -m service`` (the Docker entry point) and ``fsd serve``
run :func:`serve_command`, which starts the app with uvicorn (:mod:`service.http.server`).

Settings come from ``--config`` (or $FSD_SETTINGS_FILE), then ``FSD_*`` environment variables,
then these flags (highest). The API key is read from $FSD_API_KEY, the settings file or
``--api-key-file`` (never a flag value, which other users could see in the process list).
Invalid or insecure settings (e.g. ``--host 0.0.0.0`` without a key) exit with status 2 and a
message before anything starts. SIGTERM/SIGINT stop accepting connections, finish in-flight
requests, then drain the batcher.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from fsd.errors import ConfigError

if TYPE_CHECKING:
    from service.http.settings import ServiceSettings


def _read_key_file(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text().strip()
    except OSError as error:
        raise ConfigError(f"cannot read the API key file {path}: {error.strerror or error}") from None


def build_settings(
    config: Path | None,
    model: Path | None,
    host: str | None,
    port: int | None,
    device: str | None,
    api_key_file: Path | None,
    allow_insecure: bool,
    log_level: str | None,
) -> ServiceSettings:
    """Validated ServiceSettings from the flags over the environment over the file."""
    from service.http.settings import load_settings

    settings = load_settings(
        config,
        model_dir=model,
        host=host,
        port=port,
        device=device,
        api_key=_read_key_file(api_key_file),
        allow_insecure=True if allow_insecure else None,
        log_level=log_level,
    )
    model_dir = Path(settings.model_dir)
    if not (model_dir / "model.ts").is_file() or not (model_dir / "model.json").is_file():
        raise ConfigError(
            f"{model_dir} is not an exported model (needs model.ts and model.json): pass --model DIR, "
            "set FSD_MODEL_DIR, or run `fsd export` first"
        )
    return settings


def serve_command(
    model: Annotated[Optional[Path], typer.Option("--model", "-m", help="Exported model directory (FSD_MODEL_DIR).")] = None,
    host: Annotated[Optional[str], typer.Option(help="Bind address (default 127.0.0.1; FSD_HOST).")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port (default 8000; FSD_PORT).")] = None,
    device: Annotated[Optional[str], typer.Option(help='"auto", "cpu", "cuda" or "cuda:N" (FSD_DEVICE).')] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML/JSON settings file.")] = None,
    api_key_file: Annotated[Optional[Path], typer.Option(help="File holding the API key (else FSD_API_KEY).")] = None,
    allow_insecure: Annotated[
        bool, typer.Option("--allow-insecure", help="Serve without an API key on a non-loopback address.")
    ] = False,
    log_level: Annotated[Optional[str], typer.Option(help="critical, error, warning, info or debug.")] = None,
) -> None:
    """Serve the detector over HTTP: POST DICOM files, get lesion boxes (JSON or DICOM SR)."""
    try:
        settings = build_settings(config, model, host, port, device, api_key_file, allow_insecure, log_level)
    except ConfigError as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None

    import uvicorn

    from service.http.app import create_app
    from service.http.log_config import configure_logging
    from service.http.server import uvicorn_config

    configure_logging(settings.log_level)
    if not settings.auth_enabled:
        typer.secho("warning: no API key configured; every client may call the API", fg=typer.colors.YELLOW, err=True)
    uvicorn.Server(uvicorn_config(create_app(settings), settings)).run()
