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

#: DeepLesion PNGs store HU + 32768 as unsigned 16-bit.
DEEPLESION_HU_OFFSET: int = 32768

#: Marked on every generated or served output.
RESEARCH_USE_ONLY: str = "For research use only. Not for clinical diagnosis."


def lesion_type_name(type_id: int) -> str:
    """Name of a 1-based lesion type id; raises ValueError outside 1..8."""
    if not 1 <= type_id <= NUM_LESION_TYPES:
        raise ValueError(f"lesion type id must be in 1..{NUM_LESION_TYPES}, got {type_id}")
    return LESION_TYPES[type_id - 1]
