"""POST /v1/detect: DICOM files as multipart/form-data (repeated field ``files``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from service.http.auth import Authenticated
from service.http.dependencies import Detections
from service.http.openapi import FORM_BODY, detect_responses
from service.http.uploads import form_uploads

router = APIRouter(prefix="/v1", tags=["detection"])

MinScore = Annotated[
    float | None, Query(ge=0.0, le=1.0, description="Drop detections below this score (default: setting min_score).")
]
Preview = Annotated[bool, Query(description="Add a windowed PNG of each slice (data: URL) to its result.")]


@router.post(
    "/detect",
    summary="Detect lesions in uploaded DICOM slices",
    description=(
        "Send one or more CT DICOM files in the repeated multipart field `files`: a single slice, a key slice "
        "with its neighbours, or a whole series. Slices are grouped by series and ordered along the scan axis; "
        "each slice's context comes from its uploaded neighbours (a slice without neighbours is its own "
        "context). One result per slice (per frame of multi-frame files). Ask for `application/dicom` in "
        "`Accept` to receive a DICOM Structured Report instead of JSON."
    ),
    responses=detect_responses(),
    openapi_extra=FORM_BODY,
)
async def detect_files(
    request: Request, _: Authenticated, detections: Detections, min_score: MinScore = None, preview: Preview = False
) -> Response:
    return await detections.answer(request, form_uploads, min_score=min_score, preview=preview)
