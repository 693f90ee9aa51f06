"""The model card (``model.json`` beside ``model.ts``): a typed, versioned record of an export.

It names the model and its version, the task and class names, the architecture and the
detector config that rebuild the network, the preprocessing the inputs must go through, the
input and output contract, the parameter count, the metrics of ``fsd evaluate``, where the
training data and checkpoint came from, how the TorchScript file was verified, the software
versions, and the research-use notice. A card of another format or version is refused with a
message (:func:`read_model_card`).
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torchvision
from pydantic import BaseModel, ConfigDict, Field, ValidationError

import fsd
from fsd.artifacts.errors import ArtifactError
from fsd.constants import RESEARCH_USE_ONLY, class_names
from fsd.errors import describe_validation_error
from fsd.models import DetectorConfig
from fsd.preprocess import PreprocessConfig

MODEL_CARD_FORMAT = "fsd-model-card"
MODEL_CARD_VERSION = 2

OUTPUT_CONTRACT: dict[str, str] = {
    "boxes": "(N, 4) x1, y1, x2, y2 in model-input pixels",
    "scores": "(N,) lesion probability",
    "labels": "(N,) type id 1..K",
    "type_scores": "(N, K) type probabilities given a lesion",
}


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


class SplitSettings(Record):
    """How the data set's key slices were divided into splits when the model was trained."""

    drop_noisy: bool = True
    type_split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    split_seed: int = 0


class TrainingRecord(Record):
    """Where a model came from: its checkpoint, data and seed."""

    checkpoint_sha256: str | None = None
    iterations: int | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None
    split: SplitSettings = SplitSettings()


class Verification(Record):
    """How the saved TorchScript file was checked against the eager network."""

    samples: int
    max_abs_difference: float
    atol: float


class ModelCard(Record):
    format: Literal["fsd-model-card"] = MODEL_CARD_FORMAT
    format_version: int = MODEL_CARD_VERSION
    name: str
    version: str
    created: str
    task: Literal["binary", "types"]
    class_names: list[str]
    architecture: dict[str, Any]
    detector_config: DetectorConfig
    preprocess: PreprocessConfig
    input: dict[str, Any]
    output: dict[str, str] = Field(default_factory=lambda: dict(OUTPUT_CONTRACT))
    parameters: int
    metrics: dict[str, Any] = Field(default_factory=dict)
    training: TrainingRecord = TrainingRecord()
    verification: Verification | None = None
    software: dict[str, str] = Field(default_factory=dict)
    intended_use: str = RESEARCH_USE_ONLY

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def software_versions() -> dict[str, str]:
    return {
        "fsd": fsd.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def data_fingerprint(root: Path) -> dict[str, Any]:
    """sha256 of the annotation file and its row count, so a model names the data it learned from."""
    csv = Path(root) / "DL_info.csv"
    if not csv.is_file():
        return {"root": str(root), "dl_info_sha256": None}
    content = csv.read_bytes()
    rows = max(len(content.decode("utf-8", errors="replace").splitlines()) - 1, 0)
    return {"root": str(root), "dl_info_sha256": hashlib.sha256(content).hexdigest(), "lesion_rows": rows}


def new_model_card(
    *,
    name: str,
    version: str,
    task: str,
    architecture: dict[str, Any],
    detector_config: DetectorConfig,
    preprocess: PreprocessConfig,
    parameters: int,
    metrics: dict[str, Any] | None = None,
    training: TrainingRecord | None = None,
    verification: Verification | None = None,
) -> ModelCard:
    """The card of a model made now by this software."""
    return ModelCard(
        name=name,
        version=version,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        task=task,
        class_names=class_names(task),
        architecture=architecture,
        detector_config=detector_config,
        preprocess=preprocess,
        input={
            "channels": preprocess.num_slices,
            "pixel_spacing_mm": preprocess.spacing_mm,
            "max_size": preprocess.max_size,
            "value_range": [0.0, 1.0],
            "layout": "list of float32 (C, H, W) tensors",
        },
        parameters=parameters,
        metrics=metrics or {},
        training=training or TrainingRecord(),
        verification=verification,
        software=software_versions(),
    )


def write_model_card(card: ModelCard, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(card.to_dict(), indent=2) + "\n")
    return path


def read_model_card(path: str | Path) -> ModelCard:
    """The card in ``path``; ArtifactError naming the problem (not JSON, not a card, another version)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as error:
        raise ArtifactError(f"{path}: cannot read the model card ({error.strerror or error})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ArtifactError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict) or data.get("format") != MODEL_CARD_FORMAT:
        raise ArtifactError(f"{path}: not an FSD model card")
    version = data.get("format_version")
    if version != MODEL_CARD_VERSION:
        raise ArtifactError(
            f"{path}: model card format version {version}, this FSD reads version {MODEL_CARD_VERSION}; "
            f"export the model again with `fsd export`"
        )
    try:
        return ModelCard.model_validate(data)
    except ValidationError as error:
        raise ArtifactError(describe_validation_error(str(path), error)) from None
