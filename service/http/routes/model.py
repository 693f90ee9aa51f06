"""GET /v1/model: the loaded model's card (architecture, classes, preprocessing, metrics, versions)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from fsd.constants import class_names
from service.http.auth import Authenticated
from service.http.dependencies import LoadedModel
from service.http.errors import error_responses

router = APIRouter(prefix="/v1", tags=["model"])

CARD_EXAMPLE = {
    "format": "fsd-model-card",
    "name": "fsd",
    "version": "0.1.0",
    "task": "types",
    "class_names": class_names("types"),
    "preprocess": {"window_hu": [-1024.0, 3071.0], "spacing_mm": 0.8, "num_slices": 3, "slice_interval_mm": 2.0},
    "intended_use": "For research use only. Not for clinical diagnosis.",
}


@router.get(
    "/model",
    summary="The model card of the served model",
    responses={200: {"content": {"application/json": {"example": CARD_EXAMPLE}}}, **error_responses(401, 503)},
)
async def model_card(_: Authenticated, runtime: LoadedModel) -> dict[str, Any]:
    return runtime.model.card.to_dict()
