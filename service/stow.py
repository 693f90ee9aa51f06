"""STOW-RS as PS3.18 defines it: ``POST /v1/studies[/{study}]`` answered with the store response.

The body is read under the size limit (chunked uploads included) and split into its
``application/dicom`` parts; each part is triaged on its own (:mod:`service.instances`): not
DICOM, not CT, UIDs missing, another study than the one addressed, a repeat of an earlier part,
or an image that cannot be decoded go to the FailedSOPSequence with their FailureReason. The
accepted instances are analysed, one SR per study, within the request's deadline
(:mod:`service.study_analysis`); the SR is kept for WADO-RS and queued for the configured
destination. A study whose analysis fails has its instances refused (0110 processing failure,
or A700 out of resources when retrying later may help). Uploaded images are never kept.
"""

from __future__ import annotations

import logging
import time

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from service.body import read_body
from service.dicom_status import DATA_SET_DOES_NOT_MATCH_SOP_CLASS, DUPLICATE_SOP_INSTANCE
from service.errors import ServiceError
from service.ingest import Upload, stow_uploads
from service.instances import DecodedInstance, Instance, Refusal, decode, identify, refusal_of
from service.pool import in_pool
from service.state import ServiceState
from service.store_response import MEDIA_TYPE, store_response
from service.study_analysis import AnalysisError, analyse_study

logger = logging.getLogger("fsd.service")


def triage(
    uploads: list[Upload], study: str | None, max_pixel_bytes: int
) -> tuple[dict[str, list[DecodedInstance]], list[Refusal]]:
    """Accepted instances decoded and grouped by study (in upload order), and the refused ones."""
    accepted: dict[str, list[DecodedInstance]] = {}
    refused: list[Refusal] = []
    seen: set[str] = set()
    for upload in uploads:
        found = identify(upload.data, upload.label)
        if isinstance(found, Refusal):
            refused.append(found)
            continue
        if study is not None and found.study_instance_uid != study:
            refused.append(refusal_of(found, DATA_SET_DOES_NOT_MATCH_SOP_CLASS, "belongs to another study than the URL names."))
            continue
        if found.sop_instance_uid in seen:
            refused.append(refusal_of(found, DUPLICATE_SOP_INSTANCE, "repeats an instance sent earlier in this request."))
            continue
        decoded = decode(found, max_pixel_bytes)
        if isinstance(decoded, Refusal):
            refused.append(decoded)
            continue
        seen.add(found.sop_instance_uid)
        accepted.setdefault(found.study_instance_uid, []).append(decoded)
    return accepted, refused


def base_url(request: Request, state: ServiceState) -> str:
    """Where clients reach this server: the ``public_url`` setting, else the request's own base URL."""
    return state.settings.public_url or str(request.base_url).rstrip("/")


def _check_room(state: ServiceState) -> None:
    if state.delivery is not None and not state.delivery.has_room():
        state.metrics.rejected.labels("delivery_backlog").inc()
        raise ServiceError(
            503, "delivery_backlog",
            f"{state.delivery.pending} findings are waiting for delivery to the PACS; retry later.",
            headers={"Retry-After": str(state.settings.retry_after_s)},
        )


async def _analyse(
    state: ServiceState, by_study: dict[str, list[DecodedInstance]], deadline: float, min_score: float
) -> tuple[list[Instance], list[Refusal]]:
    accepted: list[Instance] = []
    refused: list[Refusal] = []
    for decoded in by_study.values():
        try:
            await analyse_study(
                state, decoded, min_score=min_score, timeout_s=max(deadline - time.monotonic(), 0.001), source="stow"
            )
        except AnalysisError as failure:
            state.metrics.studies.labels("stow", "failed").inc()
            logger.warning("stow study of %d instance(s) not analysed: %s", len(decoded), failure.message)
            refused.extend(refusal_of(item.instance, failure.status, failure.message) for item in decoded)
            continue
        accepted.extend(item.instance for item in decoded)
    return accepted, refused


async def answer_store_request(request: Request, state: ServiceState, study: str | None, min_score: float) -> Response:
    """The whole life of a STOW-RS request answered with the store response."""
    started = time.monotonic()
    settings = state.settings
    if not state.ready:
        raise ServiceError(
            503, "not_ready", "The model is still warming up; retry shortly.", headers={"Retry-After": str(settings.retry_after_s)}
        )
    with state.admission.slot():
        _check_room(state)
        body = await read_body(request, settings.max_request_bytes)
        uploads = stow_uploads(body, request.headers.get("content-type"), settings.max_files)
        del body
        deadline = started + settings.request_timeout_s
        by_study, refused = await in_pool(state, triage, uploads, study, settings.max_pixel_bytes_per_file, deadline=deadline)
        accepted, failed = await _analyse(state, by_study, deadline, min_score)
    refused = refused + failed
    for refusal in refused:
        state.metrics.instances.labels("stow", f"{refusal.status:04X}").inc()
    state.metrics.instances.labels("stow", "0000").inc(len(accepted))
    status, document = store_response(base_url(request, state), accepted, refused, study)
    logger.info(
        "STOW-RS: %d instance(s) stored, %d refused (%s), %.0f ms",
        len(accepted), len(refused), ",".join(sorted({f"{r.status:04X}" for r in refused})) or "none",
        (time.monotonic() - started) * 1000,
    )
    return JSONResponse(document, status_code=status, media_type=MEDIA_TYPE)
