"""Names and ids shared by data, models, evaluation and the service."""

from __future__ import annotations

#: DeepLesion's Coarse_lesion_type, in id order (id = index + 1).
LESION_TYPES: tuple[str, ...] = (
    "bone",
    "abdomen",
    "mediastinum",
    "liver",
    "lung",
    "kidney",
    "soft_tissue",
    "pelvis",
)
NUM_LESION_TYPES: int = len(LESION_TYPES)

#: DeepLesion's official FROC operating points: average false positives per image.
DEEPLESION_FP_RATES: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)

#: DeepLesion PNGs store HU + 32768 as unsigned 16-bit.
DEEPLESION_HU_OFFSET: int = 32768

#: Marked on every generated or served output.
RESEARCH_USE_ONLY: str = "For research use only. Not for clinical diagnosis."


def lesion_type_name(type_id: int) -> str:
    """Name of a 1-based lesion type id; raises ValueError outside 1..8."""
    if not 1 <= type_id <= NUM_LESION_TYPES:
        raise ValueError(f"lesion type id must be in 1..{NUM_LESION_TYPES}, got {type_id}")
    return LESION_TYPES[type_id - 1]


def class_names(task: str) -> list[str]:
    """The class names a model of ``task`` answers: the 8 lesion types, or one "lesion" class."""
    if task == "types":
        return list(LESION_TYPES)
    if task == "binary":
        return ["lesion"]
    raise ValueError(f"task must be 'binary' or 'types', got {task!r}")


def num_classes(task: str) -> int:
    """Foreground classes of ``task`` (1 binary, 8 types)."""
    return len(class_names(task))
