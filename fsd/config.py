"""Pipeline configuration: YAML files validated into typed sections.

Every key is checked (unknown keys are errors), and an invalid file fails with a message that
names the key, e.g. ``configs/x.yaml: train.lr: Input should be greater than 0``. Op and
normalization names are checked against the names of the one op table and of the normalization
factory (:mod:`fsd.nn_names`) when the file loads, so a config naming an unknown op fails at
once, not when a network is built. Neither this module nor the sections it reuses import torch,
so a command fails on a bad config before it loads torch. Sections map one to one to the
commands that use them; values derived from several sections (the number of classes, the
model's pixel spacing) are computed here and nowhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from fsd.augment_config import AugmentConfig
from fsd.constants import DEEPLESION_FP_RATES, num_classes
from fsd.errors import ConfigError, describe_validation_error
from fsd.nn_names import DEFAULT_BACKBONE_OPS, DEFAULT_HEAD_OPS, NORM_KINDS, check_op_names
from fsd.preprocess_config import PreprocessConfig

#: a normalization kind: one of :data:`fsd.nn_names.NORM_KINDS`, the kinds ``make_norm`` builds
NormKind = Literal[NORM_KINDS]  # type: ignore[valid-type]
#: op names of the op table (:data:`fsd.nn_names.OP_NAMES`, built by :data:`fsd.nn.ops.OPS`)
OpNames = Annotated[tuple[str, ...], AfterValidator(check_op_names)]
Task = Literal["binary", "types"]


class Section(BaseModel):
    """Base of every config section: unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SynthSection(Section):
    """How to generate the synthetic data set when ``data.root`` does not exist yet."""

    patients: int = Field(40, ge=1)
    size: int = Field(256, ge=64)
    seed: int = 1
    type_all: bool = True


class HeldOutSet(Section):
    """A data set of its own patients, apart from the training data (generated when missing):
    ``fsd bench``'s test set, or a validation set large enough to choose between models. Every
    key slice of it counts."""

    root: Path
    #: how to generate it when ``root`` holds no data (None: it must exist, e.g. real DeepLesion)
    synth: SynthSection | None = None


class DataSection(Section):
    root: Path = Path("data/synth")
    synth: SynthSection | None = None
    #: a validation set of its own patients: when set, the val split (where checkpoints and
    #: models are chosen) is every key slice of it instead of the val patients of ``root``
    val_data: HeldOutSet | None = None
    drop_noisy: bool = True
    #: multi-type task: typed lesions are re-split by patient with these fractions and seed
    type_split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    split_seed: int = 0
    #: keep preprocessed items in memory (fast epochs on small data sets)
    cache: bool = True
    num_workers: int = Field(0, ge=0)

    @field_validator("type_split")
    @classmethod
    def _fractions(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(v < 0 for v in value) or abs(sum(value) - 1.0) > 1e-6:
            raise ValueError("must be three non-negative fractions that sum to 1")
        return value


class RpnSection(Section):
    #: anchor sizes in mm, one tuple per FPN level (stride 4, 8, 16, 32); same count per level.
    #: About 3-4 strides per level at 0.8 mm/px, covering DeepLesion's boxes (lesions of 5-100 mm
    #: plus the 5-pixel padding of their RECIST-derived boxes).
    anchor_sizes_mm: tuple[tuple[float, ...], ...] = ((10.0, 14.0), (19.0, 27.0), (38.0, 54.0), (77.0, 108.0))
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    pre_nms_top_n_train: int = Field(1000, ge=1)
    post_nms_top_n_train: int = Field(500, ge=1)
    pre_nms_top_n_test: int = Field(500, ge=1)
    post_nms_top_n_test: int = Field(100, ge=1)
    nms_thresh: float = Field(0.7, gt=0, le=1)
    fg_iou_thresh: float = Field(0.6, gt=0, le=1)
    bg_iou_thresh: float = Field(0.3, ge=0, le=1)
    batch_size_per_image: int = Field(256, ge=2)
    positive_fraction: float = Field(0.5, gt=0, lt=1)
    #: "standard": random balanced sampling; "truncated": all positives plus the hardest
    #: negatives up to ``negative_ratio`` per positive (TruncatedRPN-style false-positive control)
    sampling: Literal["standard", "truncated"] = "truncated"
    negative_ratio: float = Field(3.0, gt=0)
    min_negatives: int = Field(16, ge=1)

    @model_validator(mode="after")
    def _same_count_per_level(self) -> RpnSection:
        counts = {len(level) for level in self.anchor_sizes_mm}
        if len(counts) != 1 or 0 in counts:
            raise ValueError("anchor_sizes_mm: every level needs the same, non-zero number of sizes")
        return self


class RoiSection(Section):
    pool_size: int = Field(7, ge=2)
    sampling_ratio: int = Field(2, ge=0)
    representation: int = Field(256, ge=8)
    batch_size_per_image: int = Field(128, ge=2)
    positive_fraction: float = Field(0.25, gt=0, lt=1)
    fg_iou_thresh: float = Field(0.5, gt=0, le=1)
    bg_iou_thresh: float = Field(0.5, ge=0, le=1)
    score_thresh: float = Field(0.01, ge=0, lt=1)
    nms_thresh: float = Field(0.3, gt=0, le=1)
    detections_per_img: int = Field(50, ge=1)


class GraphSection(Section):
    enabled: bool = False
    hidden: int = Field(128, ge=8)
    #: the graph's nodes per image: the top-scoring RPN proposals, in training as at test time
    context_size: int = Field(32, ge=1)
    #: relative weight of the training-set prior in the type adjacency at initialisation
    prior_weight: float = Field(1.0, ge=0)
    #: region awareness: each RoI's centre and size relative to the body and the slice position,
    #: embedded into its feature and given to the final classifier (off: the "graph on without
    #: position" ablation)
    position: bool = True
    #: the predicted slice position reaches the classifier detached (the typing loss does not
    #: train the slice-position head or the backbone through it)
    detach_position: bool = True


class ModelSection(Section):
    norm: NormKind = "sn"
    fpn_channels: int = Field(64, ge=8)
    rpn: RpnSection = RpnSection()
    roi: RoiSection = RoiSection()
    graph: GraphSection = GraphSection()
    #: multi-type task: the typing term of the classification loss weighs type t by
    #: n_t ** -type_balance over the training lesions' type counts n_t, normalised so that the
    #: mean weight per training lesion is 1 (0: plain cross-entropy; 1: inverse frequency)
    type_balance: float = Field(0.5, ge=0, le=1)


class StageSection(Section):
    width: int = Field(ge=4)
    blocks: int = Field(ge=1)


class SpaceSection(Section):
    """The search space: the backbone's stages and the RoI head cell."""

    stem_channels: int = Field(16, ge=4)
    stages: tuple[StageSection, ...] = (
        StageSection(width=24, blocks=2),
        StageSection(width=40, blocks=2),
        StageSection(width=64, blocks=2),
        StageSection(width=96, blocks=2),
    )
    backbone_ops: OpNames = DEFAULT_BACKBONE_OPS
    head_ops: OpNames = DEFAULT_HEAD_OPS
    head_nodes: int = Field(2, ge=1)
    head_channels: int = Field(64, ge=8)

    @model_validator(mode="after")
    def _four_stages(self) -> SpaceSection:
        if len(self.stages) != 4:
            raise ValueError("stages: the backbone has exactly 4 stages (strides 4, 8, 16, 32)")
        return self


class SearchSection(Section):
    """The architecture search: its space, method, the supernet's weight recipe and the
    architecture optimizer."""

    space: SpaceSection = SpaceSection()
    norm: NormKind = "sn"
    #: "gdas": one op per position sampled by hard Gumbel-softmax (straight-through) per step, so
    #: a step costs one network and the architecture gets many steps; "darts": the softmax-weighted
    #: sum of every op at every position (first-order DARTS)
    method: Literal["gdas", "darts"] = "gdas"
    #: Gumbel-softmax temperature, annealed linearly from start to end over the search (gdas)
    tau_start: float = Field(5.0, gt=0)
    tau_end: float = Field(0.5, gt=0)
    #: how the genotype is chosen at the end: "alphas" (the strongest op per position),
    #: "evolution" (candidates scored on the architecture set, search/selection.py) or "halving"
    #: (candidates trained stand-alone, the weaker half dropped at each rung, search/halving.py)
    selection: Literal["alphas", "evolution", "halving"] = "evolution"
    #: epochs of the ``train`` recipe at which successive halving scores and halves (halving)
    halving_rungs: tuple[int, ...] = (8, 16, 24)
    #: what halving's candidates train on and are scored on: "split", the weight set and the
    #: architecture set (the train split divided by patient, as the supernet's search uses it);
    #: "train_val", the train split and the val split (``data.val_data`` when set), the data
    #: ``fsd train`` uses, so each candidate's score is its stand-alone validation score
    halving_data: Literal["split", "train_val"] = "split"
    #: training seeds each candidate of the last rung is scored with (its score there is the
    #: mean over them): one training's validation moves by about 5 FROC points with its seed
    #: (docs/benchmarks.md), more than what usually separates the finalists (halving)
    halving_final_seeds: int = Field(1, ge=1)
    population: int = Field(8, ge=2)
    generations: int = Field(2, ge=0)
    mutation: float = Field(0.3, gt=0, le=1)
    #: what a candidate is scored by on the architecture set: its detection loss with the
    #: supernet's weights (smooth, also for a briefly trained supernet), DeepLesion's FROC mean
    #: over 0.5-4 FPs with those weights ("froc"), or that FROC mean after a short stand-alone
    #: training from scratch on the weight set ("short_training", search/short_training.py)
    selection_metric: Literal["loss", "froc", "short_training"] = "loss"
    #: epochs of the ``train`` recipe (on the weight set) each candidate trains for (short_training)
    short_training_epochs: int = Field(12, ge=1)
    #: weight-set batches over which each candidate's BN statistics are recomputed (froc metric)
    selection_batches: int = Field(20, ge=1)
    #: candidates may not have more parameters than the median random genotype of the space
    #: ("random_median"), than the ``parameter_budget_quantile`` of random genotypes' parameter
    #: counts ("random_quantile"), or any number ("none")
    parameter_budget: Literal["random_median", "random_quantile", "none"] = "random_median"
    #: the quantile a "random_quantile" budget takes: in this space fewer parameters rank the
    #: stand-alone validation score at Kendall tau +0.60 over the ranking's 10 random
    #: architectures (docs/benchmarks.md); most parameters sit in the last, widest stage
    parameter_budget_quantile: float = Field(0.25, gt=0, lt=1)
    epochs: int = Field(10, ge=1)
    #: epochs of weight training only (ops sampled uniformly) before the alphas are updated
    warmup_epochs: int = Field(3, ge=0)
    batch_size: int = Field(2, ge=1)
    #: fraction of the train split held out for architecture updates (never the test split)
    arch_val_fraction: float = Field(0.5, gt=0, lt=1)
    #: the supernet's weights train with the recipe that trains derived networks well
    weight_optimizer: Literal["sgd", "adamw"] = "adamw"
    weight_lr: float = Field(1e-3, gt=0)
    weight_momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0)
    weight_warmup_iters: int = Field(50, ge=0)
    weight_min_lr_ratio: float = Field(0.05, ge=0, le=1)
    arch_lr: float = Field(3e-3, gt=0)
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = Field(1e-3, ge=0)
    #: partial-channel mixing: only 1/k of the channels go through the mixed op (1 = off)
    partial_channels: int = Field(1, ge=1)
    #: weight of the expected-parameter cost (per million parameters) in the architecture loss
    cost_weight: float = Field(0.0, ge=0)
    #: collapse guard: at most this many parameter-free ops in the derived backbone
    max_parameter_free_backbone: int = Field(2, ge=0)
    max_iters_per_epoch: int | None = Field(None, ge=1)
    grad_clip: float = Field(5.0, gt=0)
    checkpoint_every_iters: int = Field(200, ge=1)

    @model_validator(mode="after")
    def _warmup_shorter(self) -> SearchSection:
        if self.warmup_epochs >= self.epochs:
            raise ValueError("warmup_epochs must be smaller than epochs")
        if not self.halving_rungs or any(r < 1 for r in self.halving_rungs) or list(self.halving_rungs) != sorted(set(self.halving_rungs)):
            raise ValueError("halving_rungs: positive epochs in increasing order")
        return self


class TrainSection(Section):
    epochs: int = Field(12, ge=1)
    batch_size: int = Field(2, ge=1)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.02, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0)
    norm_mix_lr_scale: float = Field(1.0, gt=0)
    warmup_iters: int = Field(100, ge=0)
    min_lr_ratio: float = Field(0.01, ge=0, le=1)
    amp: bool = True
    grad_clip: float = Field(10.0, gt=0)
    eval_every_epochs: int = Field(1, ge=1)
    checkpoint_every_iters: int = Field(200, ge=1)
    max_iters_per_epoch: int | None = Field(None, ge=1)
    #: multi-type task: repeat-factor sampling (as LVIS trains rare classes): a key slice is seen
    #: max(1, sqrt(t / f)) times per epoch, f the fraction of training key slices that hold its
    #: rarest type, t this threshold (0: every key slice once)
    type_repeat_threshold: float = Field(0.0, ge=0, le=1)
    #: training batches over which BN statistics are recomputed before each validation and in
    #: the best checkpoint (fsd/engine/recalibration.py); 0: keep the running statistics
    recalibrate_batches: int = Field(100, ge=0)
    augment: AugmentConfig = AugmentConfig()


class EvalSection(Section):
    fps: tuple[float, ...] = DEEPLESION_FP_RATES
    iou: float = Field(0.5, gt=0, le=1)
    batch_size: int = Field(4, ge=1)


class ExportSection(Section):
    """How `fsd export` checks the TorchScript file against the eager network."""

    verify_samples: int = Field(4, ge=1)
    atol: float = Field(1e-4, gt=0)


class RankingSection(Section):
    """``fsd bench ranking``: how well the supernet's scores rank architectures of the space
    against their stand-alone validation scores (trained with the ``train`` recipe)."""

    #: random architectures of the space (the random arm's genotypes: seeds 1000, 1001, ...)
    random_genotypes: int = Field(10, ge=0)
    #: further genotype files (e.g. earlier searches' results), named by their file name
    genotypes: tuple[Path, ...] = ()
    #: searches whose supernets score every architecture (their own found genotypes join the set)
    search_seeds: tuple[int, ...] = (0,)
    #: training seeds of every stand-alone architecture (its score is their mean)
    train_seeds: tuple[int, ...] = (0,)
    #: the stand-alone validation metric the supernet's scores are ranked against
    metric: Literal["froc_mean_0.5_4", "sens@4"] = "froc_mean_0.5_4"
    #: further proxies each supernet scores every architecture with, beside the selection's own
    #: ``search.selection_metric`` (to compare proxies on the same trained supernets)
    proxy_metrics: tuple[Literal["loss", "froc", "short_training"], ...] = ()
    #: results directories of earlier rankings whose stand-alone results are reused where the
    #: architecture, training seed and every training setting match (the search may differ)
    reuse: tuple[Path, ...] = ()


class BenchSection(Section):
    """``fsd bench accuracy`` and ``fsd bench ranking``: the test set, training seeds, random genotypes,
    bootstrap and the ranking measurement."""

    #: None: the data set's own test split
    test_data: HeldOutSet | None = None
    #: the arms ``fsd bench accuracy`` runs when ``--arms`` is not given (empty: every arm)
    arms: tuple[str, ...] = ()
    #: every arm trains once per seed (a searched arm with the genotype its seed's search found)
    seeds: tuple[int, ...] = (0, 1, 2)
    #: random architectures drawn from the search space (under the derivation's guards), one seed each
    random_genotypes: int = Field(5, ge=1)
    #: seeds of the slow R50-FPN arm (the first ones of ``seeds``)
    resnet50_seeds: int = Field(1, ge=1)
    #: results directories of earlier benchmarks whose committed search records
    #: (``searches/seed<k>.json``) serve this one where the search settings are the same
    search_records: tuple[Path, ...] = ()
    #: bootstrap replicates over test patients (and seeds) for the intervals
    bootstrap: int = Field(1000, ge=100)
    ranking: RankingSection = RankingSection()


class ReproducibilitySection(Section):
    """Bitwise-reproducible CPU runs: the same config and seed give the same weights, genotype and
    numbers on any x86-64 machine with AVX2, whatever its core count or vector units
    (:func:`fsd.cpu.make_cpu_reproducible`). Costs some speed on machines with wider vector units."""

    #: None: torch's defaults (fastest, but results differ between machines with other core
    #: counts or vector units); a number: this many torch threads and machine-independent kernels
    cpu_threads: int | None = Field(None, ge=1)


class FsdConfig(Section):
    name: str = "fsd"
    seed: int = 0
    task: Task = "binary"
    data: DataSection = DataSection()
    preprocess: PreprocessConfig = PreprocessConfig()
    model: ModelSection = ModelSection()
    search: SearchSection = SearchSection()
    train: TrainSection = TrainSection()
    eval: EvalSection = EvalSection()
    export: ExportSection = ExportSection()
    bench: BenchSection = BenchSection()
    reproducibility: ReproducibilitySection = ReproducibilitySection()

    @property
    def num_classes(self) -> int:
        return num_classes(self.task)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    @model_validator(mode="after")
    def _validation_apart_from_test(self) -> FsdConfig:
        """A validation set of its own must not be the training data or the benchmark's test set
        (same folder, or generated with the same settings)."""
        val, test = self.data.val_data, self.bench.test_data
        if val is None:
            return self
        if val.root == self.data.root or (test is not None and val.root == test.root):
            raise ValueError(f"data.val_data.root {val.root} is also the training data or bench.test_data; give validation its own folder")
        if val.synth is not None and test is not None and val.synth == test.synth:
            raise ValueError("data.val_data.synth equals bench.test_data.synth: validation would be the test patients; use another seed")
        if val.synth is not None and self.data.synth is not None and val.synth.seed == self.data.synth.seed:
            raise ValueError("data.val_data.synth has the training data's seed: validation would repeat training patients; use another seed")
        return self


def changed_keys(earlier: Any, now: Any, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two nested settings mappings (sorted)."""
    if not isinstance(earlier, dict) or not isinstance(now, dict):
        return [prefix] if earlier != now else []
    keys = set(earlier) | set(now)
    return sorted(k for key in keys for k in changed_keys(earlier.get(key), now.get(key), f"{prefix}.{key}" if prefix else key))


def parse_config(data: dict[str, Any], source: str = "<config>") -> FsdConfig:
    """Validate a config mapping; raises ConfigError naming each bad key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    try:
        return FsdConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(source, error)) from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> FsdConfig:
    """Load a YAML config file, apply ``key.sub=value`` overrides, and validate it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from None
    for override in overrides or []:
        apply_override(data, override)
    return parse_config(data, str(path))


def apply_override(data: dict[str, Any], override: str) -> None:
    """Apply one ``a.b.c=value`` override (value parsed as YAML) to a nested mapping."""
    if "=" not in override:
        raise ConfigError(f"override {override!r}: expected key=value")
    key, raw = override.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override {override!r}: empty key")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {override!r}: {part} is not a section")
        node = child
    node[parts[-1]] = yaml.safe_load(raw)
