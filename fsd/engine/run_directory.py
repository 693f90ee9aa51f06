"""The guard every run directory has: a new run never overwrites an old one, and ``--resume``
needs a checkpoint to resume from."""

from __future__ import annotations

from pathlib import Path

from fsd.errors import FsdError


class RunDirectoryError(FsdError):
    code = "invalid_run_directory"


def check_run_directory(checkpoint: Path, resume: bool, run: str) -> None:
    if resume and not checkpoint.is_file():
        raise RunDirectoryError(f"--resume: no checkpoint to resume from in {checkpoint.parent} (expected {checkpoint.name})")
    if not resume and checkpoint.is_file():
        raise RunDirectoryError(
            f"{checkpoint.parent} already holds a {run} run; pass --resume to continue it or choose a new --out"
        )
