"""POST /v1/studies: STOW-RS (multipart/related; type="application/dicom") for DICOMweb clients.

The answer is the same as /v1/detect's (JSON results, or a DICOM SR with Accept:
application/dicom), not a STOW-RS store report: the server analyses instances, it stores none.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from service.auth import Authenticated
from service.dependencies import State
from service.detection import answer_upload_request
from service.ingest import stow_uploads
from service.routes._openapi import STOW_BODY, detect_responses
from service.routes.detect import MinScore, Preview

router = APIRouter(prefix="/v1", tags=["detection"])


@router.post(
    "/studies",
    summary="Detect lesions in instances sent with STOW-RS",
    description=(
        'DICOMweb STOW-RS: `multipart/related; type="application/dicom"`, one instance per part. Same '
        "processing and answer as `POST /v1/detect`; any other Content-Type is answered with 415."
    ),
    responses=detect_responses(),
    openapi_extra=STOW_BODY,
)
async def store_instances(
    request: Request, state: State, _: Authenticated, min_score: MinScore = None, preview: Preview = False
) -> Response:
    return await answer_upload_request(request, state, stow_uploads, min_score=min_score, preview=preview)
