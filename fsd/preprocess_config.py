"""The parameters of the one model-input pipeline (:mod:`fsd.preprocess`), without torch.

:class:`PreprocessConfig` is the ``preprocess`` section of a config and is stored verbatim in
checkpoints and model cards; it lives apart from the pipeline's tensor code so that a config is
validated without importing torch. Import it from :mod:`fsd.preprocess` or from here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fsd.errors import ConfigError, describe_validation_error


class PreprocessConfig(BaseModel):
    """Parameters of the model-input pipeline: the ``preprocess`` section of a config, stored
    verbatim in checkpoints and model cards. Invalid values raise ConfigError naming the key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_hu: tuple[float, float] = (-1024.0, 3071.0)
    spacing_mm: float = Field(0.8, gt=0)
    num_slices: int = Field(3, ge=1)
    slice_interval_mm: float = Field(2.0, gt=0)
    max_size: int = Field(512, ge=32)
    clip_black_border: bool = True
    border_threshold_hu: float = -900.0
    border_margin_px: int = Field(4, ge=0)
    #: body mask threshold used to find the patient's extent (region awareness, cropping)
    body_threshold_hu: float = -500.0

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise ConfigError(describe_validation_error("preprocess", error)) from None

    @field_validator("window_hu")
    @classmethod
    def _ordered_window(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not value[1] > value[0]:
            raise ValueError(f"upper bound {value[1]} must exceed lower bound {value[0]}")
        return value

    @field_validator("num_slices")
    @classmethod
    def _odd_slices(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"must be a positive odd number, got {value}")
        return value

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        return cls(**data)

    def window_value(self, hu: float) -> float:
        """Where an HU value lands after windowing (used for thresholds inside the model)."""
        low, high = self.window_hu
        return float(min(max((hu - low) / (high - low), 0.0), 1.0))
