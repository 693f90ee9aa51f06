"""Checkpoints written atomically (temporary file, fsync, rename): a run killed while saving
leaves the previous checkpoint intact."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fsd.errors import FsdError


class CheckpointError(FsdError):
    code = "invalid_checkpoint"


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` so that readers only ever see a complete file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(obj, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def check_run_directory(checkpoint: Path, resume: bool, run: str) -> None:
    """A new run never overwrites an old one; ``--resume`` needs a checkpoint to resume from."""
    if resume and not checkpoint.is_file():
        raise CheckpointError(f"--resume: no checkpoint to resume from in {checkpoint.parent} (expected {checkpoint.name})")
    if not resume and checkpoint.is_file():
        raise CheckpointError(
            f"{checkpoint.parent} already holds a {run} run; pass --resume to continue it or choose a new --out"
        )


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise CheckpointError(f"{path}: not a readable checkpoint ({error})") from None
    if not isinstance(data, dict) or "model" not in data:
        raise CheckpointError(f"{path}: not an FSD checkpoint (no model state)")
    return data


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
