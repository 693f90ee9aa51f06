"""``python -m service``: the same command as ``fsd serve`` (the Docker image's entry point)."""

from __future__ import annotations

from fsd.openmp import prefer_passive_waiting

prefer_passive_waiting()  # before anything below imports torch

import typer  # noqa: E402

from service.cli import serve_command  # noqa: E402


def main() -> None:
    typer.run(serve_command)


if __name__ == "__main__":
    main()
