"""One detection request from body to response, shared by /v1/detect and /v1/studies.

admission (concurrent-request cap) -> body read under the size limit -> multipart parts ->
decode (thread pool) -> dynamic batcher (model thread) -> per-slice JSON via
:func:`fsd.inference.detections_to_result` -> JSON, or a DICOM SR when the client asked for
``application/dicom``. The event loop only awaits; the per-request deadline covers decoding,
inference and the SR.
Logs carry counts, timings and hashed series UIDs only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from fsd.inference import detections_to_result
from fsd.io.dicom import hash_uid
from service.batcher import (
    BatcherClosedError,
    BatcherError,
    DeadlineExceededError,
    JobTiming,
    OutOfMemoryError,
    QueueFullError,
)
from service.body import read_body
from service.errors import ServiceError
from service.ingest import DecodedUploads, Upload, decode_uploads
from service.negotiation import wants_dicom
from service.pool import deadline_exceeded, in_pool
from service.preview import preview_data_url
from service.sr import build_sr, read_header
from service.state import ServiceState

logger = logging.getLogger("fsd.service")
DICOM_MEDIA_TYPE = "application/dicom"
#: turns a request body and its Content-Type into uploads (``max_files`` is the third argument)
UploadParser = Callable[[bytes, str | None, int], list[Upload]]


def _unavailable(state: ServiceState, code: str, message: str) -> ServiceError:
    return ServiceError(503, code, message, headers={"Retry-After": str(state.settings.retry_after_s)})


def batcher_error_to_http(state: ServiceState, error: BatcherError) -> ServiceError:
    if isinstance(error, QueueFullError):
        return _unavailable(state, "queue_full", "The inference queue is full; retry shortly.")
    if isinstance(error, BatcherClosedError):
        return _unavailable(state, "shutting_down", "The server is shutting down; retry on another instance.")
    if isinstance(error, DeadlineExceededError):
        return deadline_exceeded(state)
    if isinstance(error, OutOfMemoryError):
        return _unavailable(state, "insufficient_memory", "The model ran out of memory on a single slice of this request.")
    return ServiceError(500, "inference_failed", "The model failed on this request; the failure was logged.")


def _attach_previews(results: list[dict[str, Any]], decoded: DecodedUploads) -> None:
    by_key = {(s.sop_instance_uid, s.frame): s for s in decoded.slices}
    for result in results:
        ct_slice = by_key[(result["sop_instance_uid"], result["frame"])]
        result["preview_png"] = preview_data_url(ct_slice.hu, ct_slice.window)


def sr_document(state: ServiceState, results: list[dict[str, Any]], datas: Sequence[bytes], min_score: float) -> bytes:
    """The SR (Part 10 bytes) of ``results`` over the DICOM files ``datas`` they came from (their
    headers are re-read from memory); ServiceError 422 when no valid SR can be built from them."""
    headers = [read_header(data) for data in datas]
    return build_sr(results, headers, model_name=state.model.name, model_version=state.model.version, min_score=min_score)


async def detect(
    state: ServiceState, uploads: list[Upload], *, min_score: float, preview: bool, as_dicom: bool, started: float
) -> dict[str, Any] | Response:
    """Run ``uploads`` through the model; ``started`` is the request's ``time.monotonic()`` start."""
    if not state.ready:
        raise _unavailable(state, "not_ready", "The model is still warming up; retry shortly.")
    deadline = started + state.settings.request_timeout_s
    preprocess = state.model.preprocess
    decoded = await in_pool(
        state, decode_uploads, uploads, preprocess, state.settings.max_pixel_bytes_per_file, deadline=deadline
    )
    decoded_at = time.monotonic()
    batch_timing = JobTiming()
    try:
        detections = await state.batcher.submit(
            [item.image for item in decoded.inputs], timeout_s=max(deadline - decoded_at, 0.001), timing=batch_timing
        )
    except BatcherError as error:
        raise batcher_error_to_http(state, error) from None
    inferred_at = time.monotonic()
    class_names = state.model.class_names
    results = [detections_to_result(d, i, class_names, min_score) for d, i in zip(detections, decoded.inputs)]
    if preview and not as_dicom:
        await in_pool(state, _attach_previews, results, decoded, deadline=deadline)
    series = sorted({hash_uid(str(s.series_instance_uid)) for s in decoded.slices})
    found = sum(len(result["detections"]) for result in results)
    timing = request_timing(started, decoded, batch_timing, inferred_at)
    logger.info(
        "detected %d lesion(s) on %d slice(s) from %d file(s), series %s, %.0f ms",
        found, len(results), len(uploads), ",".join(series), timing["total"],
    )
    if as_dicom:
        datas = [upload.data for upload in uploads]
        document = await in_pool(state, sr_document, state, results, datas, min_score, deadline=deadline)
        return Response(document, media_type=DICOM_MEDIA_TYPE, headers={"Content-Disposition": 'attachment; filename="fsd-sr.dcm"'})
    return {"model": {"name": state.model.name, "version": state.model.version}, "results": results, "timing_ms": timing}


def request_timing(started: float, decoded: DecodedUploads, batch: JobTiming, inferred_at: float) -> dict[str, float]:
    """Milliseconds of a request's steps: reading the DICOM files, building the model inputs,
    waiting for the model, the model calls that carried its slices, building the answer, and
    the whole request (body reading and waiting for a decode thread are in the total only)."""
    now = time.monotonic()
    return {
        "decode": round(decoded.decode_s * 1000, 1),
        "preprocess": round(decoded.preprocess_s * 1000, 1),
        "queue_wait": round(batch.queue_wait_s * 1000, 1),
        "model": round(batch.model_s * 1000, 1),
        "response": round((now - inferred_at) * 1000, 1),
        "total": round((now - started) * 1000, 1),
    }


async def answer_upload_request(
    request: Request, state: ServiceState, parse: UploadParser, *, min_score: float | None, preview: bool
) -> Response:
    """The whole life of a detect request: admission, body under the limit, parsing, detection."""
    started = time.monotonic()
    as_dicom = wants_dicom(request.headers.get("accept"))
    settings = state.settings
    with state.admission.slot():
        body = await read_body(request, settings.max_request_bytes)
        uploads = parse(body, request.headers.get("content-type"), settings.max_files)
        del body
        outcome = await detect(
            state,
            uploads,
            min_score=settings.min_score if min_score is None else min_score,
            preview=preview,
            as_dicom=as_dicom,
            started=started,
        )
    return outcome if isinstance(outcome, Response) else JSONResponse(outcome)
