"""POST /v1/studies and /v1/studies/{StudyInstanceUID}: STOW-RS for PACS and DICOMweb clients.

By default (and for ``Accept: application/dicom+json``, what Orthanc sends) the answer is the
PS3.18 store response (:mod:`service.ingest.stow`), sent once the instances are accepted; the study is
analysed in the background, its SR kept for WADO-RS and sent to the configured destination.
``POST /v1/studies`` also answers like ``/v1/detect`` (synchronously) when the client asks for
it by name: the detection JSON with ``Accept: application/json``, the SR itself with ``Accept:
application/dicom``.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from service.http.auth import Authenticated
from service.http.dependencies import Detections, Settings, Stores
from service.http.errors import ServiceError
from service.http.negotiation import stow_answer
from service.http.openapi import STOW_BODY, stow_responses
from service.http.routes.detect import MinScore, Preview
from service.http.uploads import stow_uploads

router = APIRouter(prefix="/v1", tags=["DICOMweb"])
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
StudyUID = Annotated[str, Path(description="StudyInstanceUID (0020,000D)", max_length=64)]


def check_uid(value: str, name: str) -> str:
    """``value`` when it is a DICOM UID (digits and dots, at most 64 characters), else 400."""
    if len(value) > 64 or not _UID.match(value):
        raise ServiceError(400, "invalid_uid", f"The {name} in the URL is not a DICOM UID.")
    return value


@router.post(
    "/studies",
    summary="Store instances (STOW-RS)",
    description=(
        'DICOMweb STOW-RS: `multipart/related; type="application/dicom"`, one instance per part, chunked or not. '
        "Answers the PS3.18 store response (`application/dicom+json`: 200 all accepted, 202 some refused, 409 none) "
        "once the instances are accepted; each study is then analysed in the background (a study sent over several "
        "requests once, `stow_study_quiet_s` after its last instance) and its SR kept for WADO-RS and sent to the "
        "configured destination. "
        "`Accept: application/json` answers the detection JSON of `/v1/detect` instead, `Accept: application/dicom` "
        "the SR."
    ),
    responses=stow_responses(),
    openapi_extra=STOW_BODY,
)
async def store_instances(
    request: Request,
    _: Authenticated,
    settings: Settings,
    stores: Stores,
    detections: Detections,
    min_score: MinScore = None,
    preview: Preview = False,
) -> Response:
    answer = stow_answer(request.headers.get("accept"))
    if answer != "store":
        return await detections.answer(request, stow_uploads, min_score=min_score, preview=preview)
    score = settings.min_score if min_score is None else min_score
    return await stores.answer(request, None, score)


@router.post(
    "/studies/{study}",
    summary="Store instances of one study (STOW-RS)",
    description=(
        "As `POST /v1/studies`, for instances of the study the URL names; an instance of another study is refused "
        "(FailureReason A900). Answers the store response only."
    ),
    responses=stow_responses(),
    openapi_extra=STOW_BODY,
)
async def store_study_instances(
    request: Request, study: StudyUID, _: Authenticated, settings: Settings, stores: Stores, min_score: MinScore = None
) -> Response:
    check_uid(study, "StudyInstanceUID")
    stow_answer(request.headers.get("accept"), store_only=True)
    score = settings.min_score if min_score is None else min_score
    return await stores.answer(request, study, score)
