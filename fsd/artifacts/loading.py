"""Loading a detector for inference: the one eager loader and the one TorchScript loader.

- :func:`load_exported`: ``model.ts`` + ``model.json`` of an export as TorchScript (the server,
  ``fsd predict``, ``fsd evaluate`` on an export);
- :func:`load_eager`: the eager network, rebuilt from a training checkpoint or from an export's
  card and weights (the exporter, ``fsd evaluate`` on a checkpoint, the speed benchmark);
- :func:`load_for_inference`: either, by what the path is.

Each returns an :class:`InferenceModel`: the module in eval mode and the model card that says
what it expects and answers (a checkpoint gets the card its export would have, version
"checkpoint").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fsd.artifacts import torchscript
from fsd.artifacts.checkpoint import Checkpoint, load_checkpoint
from fsd.artifacts.errors import ArtifactError
from fsd.artifacts.model_card import (
    ModelCard,
    SplitSettings,
    TrainingRecord,
    data_fingerprint,
    new_model_card,
    read_model_card,
)
from fsd.models import build_from_architecture
from fsd.models.complexity import count_parameters
from fsd.preprocess import PreprocessConfig

MODEL_FILE = "model.ts"
CARD_FILE = "model.json"


@dataclass
class InferenceModel:
    """A detector ready for eval-mode calls, with the card that describes its inputs and outputs."""

    module: nn.Module
    card: ModelCard

    @property
    def preprocess(self) -> PreprocessConfig:
        return self.card.preprocess

    @property
    def task(self) -> str:
        return self.card.task

    @property
    def class_names(self) -> list[str]:
        return list(self.card.class_names)

    @property
    def num_classes(self) -> int:
        return len(self.card.class_names)

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def version(self) -> str:
        return self.card.version

    @property
    def split(self) -> SplitSettings:
        return self.card.training.split


def export_directory(path: str | Path) -> Path:
    """The export directory ``path`` names (the directory itself, or the one holding model.ts)."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path} does not exist (expected an exported model directory; run `fsd export`)")
    directory = path if path.is_dir() else path.parent
    if not (directory / MODEL_FILE).is_file() or not (directory / CARD_FILE).is_file():
        raise ArtifactError(f"{directory} is not an exported model (needs {MODEL_FILE} and {CARD_FILE}; run `fsd export`)")
    return directory


def training_record(checkpoint: Checkpoint, path: Path) -> TrainingRecord:
    """Provenance of a model trained into ``path``: checkpoint hash, data fingerprint, seed, split."""
    config = checkpoint.config
    data = config.data
    return TrainingRecord(
        checkpoint_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        iterations=checkpoint.position.iteration,
        data=data_fingerprint(data.root),
        seed=config.seed,
        split=SplitSettings(drop_noisy=data.drop_noisy, type_split=data.type_split, split_seed=data.split_seed),
    )


def network_from_checkpoint(checkpoint: Checkpoint) -> nn.Module:
    """The eval-mode network a training checkpoint holds."""
    network = build_from_architecture(checkpoint.architecture, checkpoint.detector_config)
    network.load_state_dict(checkpoint.model)
    return network.eval()


def checkpoint_card(checkpoint: Checkpoint, path: Path, network: nn.Module) -> ModelCard:
    return new_model_card(
        name=checkpoint.config.name,
        version="checkpoint",
        task=checkpoint.task,
        architecture=checkpoint.architecture,
        detector_config=checkpoint.detector_config,
        preprocess=checkpoint.preprocess,
        parameters=count_parameters(network),
        training=training_record(checkpoint, path),
    )


def load_exported(path: str | Path, device: torch.device | str = "cpu") -> InferenceModel:
    """The TorchScript model of an export directory (or of its model.ts), with its card."""
    directory = export_directory(path)
    card = read_model_card(directory / CARD_FILE)
    try:
        module = torchscript.load(directory / MODEL_FILE, device)
    except Exception as error:
        raise ArtifactError(f"{directory / MODEL_FILE}: cannot load TorchScript model ({error})") from None
    return InferenceModel(module=module.eval(), card=card)


def load_eager(path: str | Path, device: torch.device | str = "cpu") -> InferenceModel:
    """The eager network of a training checkpoint (.pt) or of an export directory."""
    path = Path(path)
    if path.suffix == ".pt":
        checkpoint = load_checkpoint(path, kind="train")
        network = network_from_checkpoint(checkpoint)
        return InferenceModel(module=network.to(device), card=checkpoint_card(checkpoint, path, network))
    directory = export_directory(path)
    card = read_model_card(directory / CARD_FILE)
    network = build_from_architecture(card.architecture, card.detector_config)
    scripted = load_exported(directory).module
    try:
        network.load_state_dict(scripted.state_dict())
    except RuntimeError as error:
        raise ArtifactError(f"{directory}: the weights of {MODEL_FILE} do not fit the network its card describes ({error})") from None
    return InferenceModel(module=network.eval().to(device), card=card)


def load_for_inference(path: str | Path, device: torch.device | str = "cpu") -> InferenceModel:
    """A training checkpoint (.pt) as its eager network, an export as TorchScript."""
    path = Path(path)
    if path.suffix == ".pt":
        return load_eager(path, device)
    return load_exported(path, device)
