"""Opening the configured data: generating the synthetic set when asked, then a split."""

from __future__ import annotations

from fsd.config import FsdConfig
from fsd.data.deeplesion import DeepLesionDataset
from fsd.engine.distributed import DistributedContext, barrier
from fsd.errors import DataError


def ensure_data(config: FsdConfig, context: DistributedContext | None = None, progress: bool = True) -> None:
    """Generate the synthetic data set at ``data.root`` when it is missing and ``data.synth`` is set;
    otherwise require the DeepLesion layout to be there."""
    root = config.data.root
    csv = root / "DL_info.csv"
    is_main = context is None or context.is_main
    if not csv.is_file() and is_main:
        if config.data.synth is None:
            raise DataError(
                f"no DeepLesion data at {root} (missing {csv.name}); download DeepLesion there or set data.synth "
                f"to generate a synthetic set"
            )
        from fsd.data.synth import generate_dataset

        synth = config.data.synth
        generate_dataset(
            root, patients=synth.patients, size=synth.size, seed=synth.seed, type_all=synth.type_all, progress=progress
        )
    if context is not None:
        barrier(context)


def open_split(config: FsdConfig, split: str) -> DeepLesionDataset:
    data = config.data
    dataset = DeepLesionDataset(
        data.root,
        split=split,
        task=config.task,
        preprocess=config.preprocess_config(),
        drop_noisy=data.drop_noisy,
        type_split=data.type_split,
        split_seed=data.split_seed,
        cache=data.cache,
    )
    if len(dataset) == 0:
        raise DataError(f"{data.root}: split {split!r} of task {config.task!r} has no key slices with lesions")
    return dataset
