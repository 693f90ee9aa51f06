"""``python -m service``: the same command as ``fsd serve`` (the Docker image's entry point)."""

from __future__ import annotations

import typer

from service.cli import serve_command


def main() -> None:
    typer.run(serve_command)


if __name__ == "__main__":
    main()
