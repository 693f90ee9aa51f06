"""Loading a detector for inference: an exported model directory or a training checkpoint.

The server and ``fsd predict`` use :func:`load_exported` (TorchScript + model card);
``fsd evaluate`` accepts either form through :func:`load_for_inference`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fsd import torchscript
from fsd.errors import FsdError
from fsd.export import MODEL_CARD_FORMAT, class_names_for, load_checkpoint_model
from fsd.preprocess import PreprocessConfig


class ModelLoadError(FsdError):
    code = "model_unavailable"


@dataclass
class InferenceModel:
    """A detector ready for eval-mode calls, with what it needs to know about its inputs."""

    module: torch.nn.Module
    preprocess: PreprocessConfig
    task: str
    class_names: list[str]
    name: str
    version: str
    card: dict[str, Any] = field(default_factory=dict)
    split: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _model_dir(path: Path) -> Path:
    return path if path.is_dir() else path.parent


def load_exported(path: str | Path, device: torch.device | str = "cpu") -> InferenceModel:
    """Load ``model.ts`` and ``model.json`` from an export directory (or the .ts file's directory)."""
    directory = _model_dir(Path(path))
    model_file, card_file = directory / "model.ts", directory / "model.json"
    if not model_file.is_file() or not card_file.is_file():
        raise ModelLoadError(f"{directory} is not an exported model (needs model.ts and model.json; run `fsd export`)")
    try:
        card = json.loads(card_file.read_text())
    except json.JSONDecodeError as error:
        raise ModelLoadError(f"{card_file}: not valid JSON ({error})") from None
    if card.get("format") != MODEL_CARD_FORMAT:
        raise ModelLoadError(f"{card_file}: not an FSD model card")
    try:
        module = torchscript.load(model_file, device)
    except Exception as error:
        raise ModelLoadError(f"{model_file}: cannot load TorchScript model ({error})") from None
    module.eval()
    return InferenceModel(
        module=module,
        preprocess=PreprocessConfig.from_dict(card["preprocess"]),
        task=card["task"],
        class_names=list(card["class_names"]),
        name=str(card.get("name", "fsd")),
        version=str(card.get("version", "0")),
        card=card,
        split=card.get("training", {}).get("split", {}),
    )


def load_for_inference(path: str | Path, device: torch.device | str = "cpu") -> InferenceModel:
    """An export directory / model.ts, or a training checkpoint (.pt)."""
    path = Path(path)
    if path.suffix == ".pt":
        module, state = load_checkpoint_model(path)
        config = state.get("config", {})
        data = config.get("data", {})
        return InferenceModel(
            module=module.to(device),
            preprocess=PreprocessConfig.from_dict(state["preprocess"]),
            task=state["task"],
            class_names=class_names_for(state["task"]),
            name=str(config.get("name", "fsd")),
            version="checkpoint",
            split={key: data.get(key) for key in ("type_split", "split_seed", "drop_noisy")},
        )
    return load_exported(path, device)
