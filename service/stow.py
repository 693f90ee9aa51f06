"""STOW-RS as PS3.18 defines it: ``POST /v1/studies[/{study}]`` answered with the store response
as soon as the instances are accepted; the analysis follows in the background.

The body is read under the size limit (chunked uploads included) and split into its
``application/dicom`` parts; each part is triaged on its own in the decode pool
(:mod:`service.instances`, without decoding pixels): not DICOM, not CT, UIDs missing, another
study than the one addressed, a repeat of an earlier part, or an image that cannot be used go
to the FailedSOPSequence with their FailureReason. The accepted instances (their encoded bytes
only) go to the study pipeline's collector (:mod:`service.study_collector`), grouped by
StudyInstanceUID with those of earlier requests and of the DICOM node: a study sent over several
requests (as Orthanc's DICOMweb client does, ``StowMaxInstances`` per request) is analysed once,
``stow_study_quiet_s`` after its last instance, with one SR, kept for WADO-RS and queued for the
configured destination. An instance that would take its study over the study limits is refused
(``C001``); the study's other instances are analysed.

Nothing that may pass later is put in the FailedSOPSequence: when the memory for received
instances or the SR delivery queue is full, or the service is stopping, the whole request is
answered 503 with Retry-After and nothing of it is kept. Uploaded images are never kept beyond
their study's analysis.
"""

from __future__ import annotations

import logging
import time

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from service.body import read_body
from service.dicom_status import DATA_SET_DOES_NOT_MATCH_SOP_CLASS, DUPLICATE_SOP_INSTANCE, SUCCESS
from service.errors import ServiceError
from service.ingest import Upload, stow_uploads
from service.instances import Instance, Refusal, identify, refusal_of, validate
from service.pool import in_pool
from service.state import ServiceState
from service.store_response import MEDIA_TYPE, store_response
from service.study_pipeline import StudyPipeline

logger = logging.getLogger("fsd.service")


def triage(uploads: list[Upload], study: str | None, max_pixel_bytes: int) -> tuple[list[Instance], list[Refusal]]:
    """The accepted instances (in upload order) and the refused ones, without decoding any pixels."""
    accepted: list[Instance] = []
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
        checked = validate(found, max_pixel_bytes)
        if isinstance(checked, Refusal):
            refused.append(checked)
            continue
        seen.add(found.sop_instance_uid)
        accepted.append(checked)
    return accepted, refused


def base_url(request: Request, state: ServiceState) -> str:
    """Where clients reach this server: the ``public_url`` setting, else the request's own base URL."""
    return state.settings.public_url or str(request.base_url).rstrip("/")


def _unavailable(state: ServiceState, reason: str, code: str, message: str) -> ServiceError:
    state.metrics.rejected.labels(reason).inc()
    return ServiceError(503, code, message, headers={"Retry-After": str(state.settings.retry_after_s)})


def _check_room(state: ServiceState, pipeline: StudyPipeline) -> None:
    if pipeline.collector.closed:
        raise _unavailable(state, "shutting_down", "shutting_down", "The server is shutting down; retry on another instance.")
    if state.delivery is not None and not state.delivery.has_room():
        raise _unavailable(
            state, "delivery_backlog", "delivery_backlog",
            f"{state.delivery.pending} findings are waiting for delivery to the PACS; retry later.",
        )


def _hold(
    state: ServiceState, pipeline: StudyPipeline, accepted: list[Instance], min_score: float
) -> tuple[list[Instance], list[Refusal]]:
    """Hand the accepted instances to the pipeline: those held, and those refused over the study limits."""
    if not accepted:
        return [], []
    statuses = pipeline.collector.add(
        accepted, source="stow", quiet_s=state.settings.stow_study_quiet_s, min_score=min_score
    )
    if statuses is None:
        _check_room(state, pipeline)  # closed meanwhile: say so
        raise _unavailable(
            state, "intake_full", "intake_full",
            f"The memory for received instances is full (setting max_pending_mib, {state.settings.max_pending_mib:g} MiB); "
            "retry later.",
        )
    pipeline.notify()
    held = [instance for instance, status in zip(accepted, statuses) if status == SUCCESS]
    over = [
        refusal_of(instance, status, "its study is over the study limits (settings max_study_instances, max_study_mib).")
        for instance, status in zip(accepted, statuses)
        if status != SUCCESS
    ]
    return held, over


async def answer_store_request(request: Request, state: ServiceState, study: str | None, min_score: float) -> Response:
    """The whole life of a STOW-RS request answered with the store response."""
    started = time.monotonic()
    settings = state.settings
    if not state.ready:
        raise ServiceError(
            503, "not_ready", "The model is still warming up; retry shortly.", headers={"Retry-After": str(settings.retry_after_s)}
        )
    pipeline = state.pipeline
    assert pipeline is not None, "the lifespan starts the study pipeline before serving"
    with state.admission.slot():
        _check_room(state, pipeline)
        body = await read_body(request, settings.max_request_bytes)
        uploads = stow_uploads(body, request.headers.get("content-type"), settings.max_files)
        del body
        deadline = started + settings.request_timeout_s
        accepted, refused = await in_pool(state, triage, uploads, study, settings.max_pixel_bytes_per_file, deadline=deadline)
        del uploads
        held, over = _hold(state, pipeline, accepted, min_score)
    refused = refused + over
    for refusal in refused:
        state.metrics.instances.labels("stow", f"{refusal.status:04X}").inc()
    state.metrics.instances.labels("stow", "0000").inc(len(held))
    status, document = store_response(base_url(request, state), held, refused, study)
    logger.info(
        "STOW-RS: %d instance(s) accepted for analysis, %d refused (%s), %.0f ms",
        len(held), len(refused), ",".join(sorted({f"{r.status:04X}" for r in refused})) or "none",
        (time.monotonic() - started) * 1000,
    )
    return JSONResponse(document, status_code=status, media_type=MEDIA_TYPE)
