"""Training and search checkpoints: one typed, versioned record, written atomically.

A checkpoint holds what rebuilds the network (architecture record, detector config,
preprocessing, task), its weights and optimizer state, and where the run stood (epoch, batch,
iteration, total iterations, best validation metric, elapsed time, every RNG state), plus
``extra``: what the run's own step adds (the search's architecture optimizer and batch
position). ``kind`` tells training ("train") from search ("search") checkpoints; a reader asks
for the kind it can use.

Files are written to a temporary file, fsynced and renamed, so a run killed while saving leaves
the previous checkpoint intact. A file of another ``format_version`` is refused with a message.
"""

from __future__ import annotations

import os
import random
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from fsd.artifacts.errors import ArtifactError
from fsd.config import FsdConfig, parse_config
from fsd.errors import ConfigError
from fsd.models import DetectorConfig
from fsd.preprocess import PreprocessConfig

CHECKPOINT_FORMAT = "fsd-checkpoint"
CHECKPOINT_VERSION = 2
CheckpointKind = Literal["train", "search"]


@dataclass
class RunPosition:
    """Where a run stands: ``batch_in_epoch`` batches of ``epoch`` done, ``iteration`` in all."""

    epoch: int = 0
    batch_in_epoch: int = 0
    iteration: int = 0
    total_iters: int = 0


@dataclass
class Checkpoint:
    """Everything a run needs to resume, and everything export needs to rebuild its network."""

    kind: CheckpointKind
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    architecture: dict[str, Any]
    detector_config: DetectorConfig
    config: FsdConfig
    position: RunPosition = field(default_factory=RunPosition)
    best_metric: float | None = None
    elapsed_s: float = 0.0
    rng: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def preprocess(self) -> PreprocessConfig:
        return self.config.preprocess

    @property
    def task(self) -> str:
        return self.config.task

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_VERSION,
            "kind": self.kind,
            "model": self.model,
            "optimizer": self.optimizer,
            "architecture": self.architecture,
            "detector_config": self.detector_config.to_dict(),
            "config": self.config.model_dump(mode="json"),
            "position": asdict(self.position),
            "best_metric": self.best_metric,
            "elapsed_s": self.elapsed_s,
            "rng": self.rng,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: Any, source: str) -> Checkpoint:
        """The checkpoint a loaded file holds; ArtifactError when it is not one of this version."""
        if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
            raise ArtifactError(f"{source}: not an FSD checkpoint")
        version = data.get("format_version", 1)
        if version != CHECKPOINT_VERSION:
            raise ArtifactError(
                f"{source}: checkpoint format version {version}, this FSD reads version {CHECKPOINT_VERSION}; "
                f"train again with this version (or use the FSD release that wrote it)"
            )
        try:
            return cls(
                kind=data["kind"],
                model=data["model"],
                optimizer=data["optimizer"],
                architecture=data["architecture"],
                detector_config=DetectorConfig.from_dict(data["detector_config"]),
                config=parse_config(data["config"], f"{source} (its config)"),
                position=RunPosition(**data["position"]),
                best_metric=data["best_metric"],
                elapsed_s=float(data["elapsed_s"]),
                rng=data["rng"],
                extra=data["extra"],
            )
        except (KeyError, TypeError, ValueError, ConfigError) as error:
            raise ArtifactError(f"{source}: damaged checkpoint ({type(error).__name__}: {error})") from None


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


def save_checkpoint(checkpoint: Checkpoint, path: str | Path) -> Path:
    return atomic_save(checkpoint.to_dict(), path)


def load_checkpoint(path: str | Path, kind: CheckpointKind | None = None) -> Checkpoint:
    """Read a checkpoint (of ``kind`` when given); ArtifactError with a reason otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise ArtifactError(f"{path}: not a readable checkpoint ({error})") from None
    checkpoint = Checkpoint.from_dict(data, str(path))
    if kind is not None and checkpoint.kind != kind:
        wanted = "a training checkpoint (best.pt or last.pt of `fsd train`)" if kind == "train" else "a search checkpoint"
        raise ArtifactError(f"{path} is a {checkpoint.kind} checkpoint; this needs {wanted}")
    return checkpoint


def rng_state() -> dict[str, Any]:
    """The Python, NumPy, torch (and CUDA) generator states, for an exact resume."""
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
