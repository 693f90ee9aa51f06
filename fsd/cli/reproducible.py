"""The config's reproducible CPU mode (``reproducibility.cpu_threads``), turned on at the start of a
command, before its first tensor operation (:func:`fsd.cpu.make_cpu_reproducible`)."""

from __future__ import annotations

import typer

from fsd.config import FsdConfig
from fsd.cpu import make_cpu_reproducible
from fsd.device import resolve_device


def apply_reproducibility(config: FsdConfig, device: str = "auto") -> bool:
    """Turn the mode on when the config asks for it and the command runs on the CPU; says so on
    stderr with the CPU it runs on. Returns whether it is on."""
    threads = config.reproducibility.cpu_threads
    if threads is None or resolve_device(device).type != "cpu":
        return False
    typer.echo(f"reproducible CPU mode: {make_cpu_reproducible(threads)}", err=True)
    return True
