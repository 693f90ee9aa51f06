"""Response models of the API (they document the JSON in OpenAPI, with examples)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_DETECTION_EXAMPLE: dict[str, Any] = {
    "box_px": [212.4, 180.1, 251.0, 214.7],
    "box_mm": [148.7, 126.1, 175.7, 150.3],
    "long_diameter_mm": 20.0,
    "center_patient_mm": [-30.2, -48.6, -112.5],
    "type": "liver",
    "type_id": 4,
    "score": 0.912,
    "type_scores": {
        "bone": 0.01, "abdomen": 0.04, "mediastinum": 0.01, "liver": 0.86,
        "lung": 0.01, "kidney": 0.05, "soft_tissue": 0.01, "pelvis": 0.01,
    },
}
_RESULT_EXAMPLE: dict[str, Any] = {
    "sop_instance_uid": "1.2.826.0.1.3680043.8.498.1001",
    "series_instance_uid": "1.2.826.0.1.3680043.8.498.1000",
    "frame": 1,
    "source": "slice_042.dcm",
    "context_slices": 3,
    "detections": [_DETECTION_EXAMPLE],
}


class Detection(BaseModel):
    box_px: list[float] = Field(description="x1, y1, x2, y2 in the original DICOM pixel grid (pixel edges, 0-based).")
    box_mm: list[float] = Field(description="The same box in mm from the image's top-left corner.")
    long_diameter_mm: float = Field(description="RECIST-like long-axis estimate in mm.")
    center_patient_mm: list[float] | None = Field(description="Box centre in patient coordinates (LPS, mm), if known.")
    type: str = Field(description='Lesion type name ("lesion" for a binary model).')
    type_id: int | None = Field(description="Lesion type 1..8 (DeepLesion coarse type); null for a binary model.")
    score: float = Field(description="Probability that the box is a lesion.")
    type_scores: dict[str, float] = Field(description="Type name -> probability given a lesion.")


class SliceResult(BaseModel):
    sop_instance_uid: str | None
    series_instance_uid: str | None
    frame: int = Field(description="1-based frame number within its file.")
    source: str = Field(description="The uploaded file's name, or 'part N' / 'file N'.")
    context_slices: int = Field(description="Distinct uploaded slices that fed this slice's context (1 = itself only).")
    detections: list[Detection]
    preview_png: str | None = Field(
        None, description="With ?preview=true: the slice windowed to 8 bits, as a data: URL (PNG, original grid)."
    )


class ModelRef(BaseModel):
    name: str
    version: str


class DetectResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": {"name": "fsd", "version": "0.1.0"},
                    "results": [_RESULT_EXAMPLE],
                    "timing_ms": {"decode": 12.1, "preprocess": 20.4, "queue_wait": 6.3, "model": 150.2, "response": 1.9, "total": 195.7},
                }
            ]
        }
    )

    model: ModelRef
    results: list[SliceResult] = Field(description="One per uploaded slice (per frame), grouped by series, ordered along the scan axis.")
    timing_ms: dict[str, float] = Field(
        description="decode (DICOM reading), preprocess (model inputs), queue_wait, model (the model calls that carried "
        "the request's slices), response (building the answer) and total, in ms."
    )


class HealthStatus(BaseModel):
    status: str = Field(examples=["ok"])
    ready: bool | None = None
    model: ModelRef | None = None
    device: str | None = Field(None, description='Where the model runs, e.g. "cpu" or "cuda:0".')
