"""The ``train.augment`` section of a config, without torch.

:class:`AugmentConfig` is used as is by :func:`fsd.data.augment.augment`; it lives apart from the
augmentation's tensor code (and from ``fsd.data``, whose package imports torch) so that a config is
validated without importing torch. Import it from :mod:`fsd.data.augment` or from here.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AugmentConfig(BaseModel):
    """The ``train.augment`` section of a config, used as is by :func:`fsd.data.augment.augment`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hflip: float = Field(0.0, ge=0, le=1)
    scale_range: tuple[float, float] = (0.85, 1.15)
    translate_px: int = Field(16, ge=0)
    intensity_jitter: float = Field(0.03, ge=0)
    #: a box keeps its lesion when at least this fraction of its area stays in the image
    min_visible: float = Field(0.6, ge=0, le=1)
