"""What training writes and inference reads: typed, versioned checkpoints and model cards, the
TorchScript calls, and the loaders that the exporter, the evaluator, the benchmarks and the
server all use."""

from fsd.artifacts.checkpoint import (
    CHECKPOINT_VERSION,
    Checkpoint,
    RunPosition,
    atomic_save,
    load_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)
from fsd.artifacts.errors import ArtifactError
from fsd.artifacts.loading import (
    InferenceModel,
    load_eager,
    load_exported,
    load_for_inference,
    network_from_checkpoint,
    training_record,
)
from fsd.artifacts.model_card import (
    MODEL_CARD_VERSION,
    ModelCard,
    SplitSettings,
    TrainingRecord,
    Verification,
    new_model_card,
    read_model_card,
    write_model_card,
)

__all__ = [
    "CHECKPOINT_VERSION",
    "MODEL_CARD_VERSION",
    "ArtifactError",
    "Checkpoint",
    "InferenceModel",
    "ModelCard",
    "RunPosition",
    "SplitSettings",
    "TrainingRecord",
    "Verification",
    "atomic_save",
    "load_checkpoint",
    "load_eager",
    "load_exported",
    "load_for_inference",
    "network_from_checkpoint",
    "new_model_card",
    "read_model_card",
    "restore_rng_state",
    "rng_state",
    "save_checkpoint",
    "training_record",
    "write_model_card",
]
