"""Making the configured data exist before a command opens it: the synthetic DeepLesion-format
set is generated (by rank 0 under torchrun, the others waiting) when ``data.root`` holds no
data and ``data.synth`` says how to make it; so is a separate validation set
(``data.val_data``) or benchmark test set (:func:`ensure_held_out`)."""

from __future__ import annotations

from fsd.config import FsdConfig, HeldOutSet
from fsd.data.synth import check_generated, generate_dataset
from fsd.engine.distributed import barrier, init_distributed
from fsd.errors import DataError


def ensure_data(config: FsdConfig, device: str = "auto", progress: bool = True, dicom: bool = False) -> None:
    """Generate the synthetic set at ``data.root`` when it is missing (or lacks the DICOM series
    ``dicom`` asks for) and ``data.synth`` is set; otherwise require the DeepLesion layout there.
    A synthetic set made with other settings than ``data.synth``'s fails with a clear message."""
    context = init_distributed(device)
    root = config.data.root
    csv = root / "DL_info.csv"
    synth = config.data.synth
    if synth is not None and csv.is_file():
        check_generated(root, synth.patients, synth.size, synth.seed, synth.type_all)
    missing = not csv.is_file() or (dicom and not (root / "dicom").is_dir())
    if missing and context.is_main:
        if synth is None:
            raise DataError(
                f"no DeepLesion data at {root} (missing {csv.name}); download DeepLesion there or set data.synth "
                f"to generate a synthetic set"
            )
        generate_dataset(
            root, patients=synth.patients, size=synth.size, seed=synth.seed, type_all=synth.type_all, dicom=dicom, progress=progress
        )
    if config.data.val_data is not None and context.is_main:
        ensure_held_out(config.data.val_data, "validation set", progress)
    barrier(context)


def ensure_held_out(held_out: HeldOutSet, purpose: str, progress: bool = True) -> None:
    """Generate ``held_out`` when its folder holds no data and it says how (``synth``); a set
    made with other settings fails with a clear message, a missing one without ``synth`` too."""
    csv = held_out.root / "DL_info.csv"
    synth = held_out.synth
    if csv.is_file():
        if synth is not None:
            check_generated(held_out.root, synth.patients, synth.size, synth.seed, synth.type_all)
        return
    if synth is None:
        raise DataError(f"no {purpose} at {held_out.root} (missing {csv.name}) and no synth settings to generate it")
    generate_dataset(held_out.root, patients=synth.patients, size=synth.size, seed=synth.seed, type_all=synth.type_all, progress=progress)
