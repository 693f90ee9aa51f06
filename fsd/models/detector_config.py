"""`DetectorConfig`: everything a detector builder needs, in plain data the model card stores.

Made from the pipeline config in exactly one place (:meth:`DetectorConfig.from_config`), where
the task gives the number of classes, the preprocessing gives the input channels and pixel
spacing, and anchor sizes are turned from millimetres into model pixels.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fsd.config import FsdConfig, ModelSection
from fsd.preprocess import PreprocessConfig


class DetectorConfig(BaseModel):
    """Model hyper-parameters with the values derived from the task and preprocessing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ModelSection = ModelSection()
    num_classes: int = Field(1, ge=1)
    in_channels: int = Field(3, ge=1)
    pixel_spacing_mm: float = Field(0.8, gt=0)
    #: windowed value of the body threshold: pixels above it belong to the patient
    body_threshold: float = 0.128
    image_mean: float = 0.2
    image_std: float = 0.2
    size_divisible: int = 32

    @classmethod
    def from_config(cls, config: FsdConfig, norm: str | None = None) -> DetectorConfig:
        preprocess: PreprocessConfig = config.preprocess
        model = config.model if norm is None else config.model.model_copy(update={"norm": norm})
        return cls(
            model=model,
            num_classes=config.num_classes,
            in_channels=preprocess.num_slices,
            pixel_spacing_mm=preprocess.spacing_mm,
            body_threshold=preprocess.window_value(preprocess.body_threshold_hu),
        )

    @property
    def anchor_sizes_px(self) -> tuple[tuple[float, ...], ...]:
        return tuple(
            tuple(size / self.pixel_spacing_mm for size in level) for level in self.model.rpn.anchor_sizes_mm
        )

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectorConfig:
        return cls.model_validate(data)
