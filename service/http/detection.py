"""One detection request from body to answer: ``POST /v1/detect``, and ``POST /v1/studies`` when
the client asks for the detection JSON or the SR by name.

readiness -> admission (concurrent-request cap) -> body read under the size limit -> multipart
parts -> analysis (:class:`~service.analysis.slices.SliceDetector`: decode pool, dynamic
batcher, per-slice results) -> JSON (with windowed previews on request), or the DICOM SR built
by delivery when the client asked for ``application/dicom``. The event loop only awaits; the
per-request deadline covers decoding, inference, previews and the SR. What a stage refuses
becomes its answer here: a full queue, shutdown or a slice out of memory 503 (through
:class:`~service.http.unavailable.Unavailable`), the deadline 504, a model failure 500. Logs
carry counts, timings and hashed series UIDs only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from fsd.io.dicom import hash_uid
from service.analysis.batcher import (
    BatcherClosedError,
    BatcherError,
    DeadlineExceededError,
    OutOfMemoryError,
    QueueFullError,
)
from service.analysis.slices import DecodedUploads, SliceDetections, SliceDetector, Upload
from service.http.admission import Admission
from service.http.body import read_body
from service.http.errors import ServiceError
from service.http.negotiation import wants_dicom
from service.http.preview import preview_data_url
from service.http.readiness import Readiness
from service.http.unavailable import WARMING_UP, Unavailable

logger = logging.getLogger("fsd.service")
DICOM_MEDIA_TYPE = "application/dicom"
#: turns a request body and its Content-Type into uploads (``max_files`` is the third argument)
UploadParser = Callable[[bytes, str | None, int], list[Upload]]


def deadline_exceeded(timeout_s: float) -> ServiceError:
    """The 504 answer of a request that ran out of time."""
    return ServiceError(
        504, "deadline_exceeded", f"The request did not finish within {timeout_s:g} s (setting request_timeout_s)."
    )


def refusal_of_batcher(error: BatcherError, unavailable: Unavailable, timeout_s: float) -> ServiceError:
    """The answer to a batcher refusal (the batcher counts the refusals it makes itself)."""
    if isinstance(error, QueueFullError):
        return unavailable.error("queue_full", "The inference queue is full; retry shortly.")
    if isinstance(error, BatcherClosedError):
        return unavailable.error("shutting_down", "The server is shutting down; retry on another instance.")
    if isinstance(error, DeadlineExceededError):
        return deadline_exceeded(timeout_s)
    if isinstance(error, OutOfMemoryError):
        return unavailable.error("insufficient_memory", "The model ran out of memory on a single slice of this request.")
    return ServiceError(500, "inference_failed", "The model failed on this request; the failure was logged.")


def _attach_previews(results: list[dict[str, Any]], decoded: DecodedUploads) -> None:
    by_key = {(s.sop_instance_uid, s.frame): s for s in decoded.slices}
    for result in results:
        ct_slice = by_key[(result["sop_instance_uid"], result["frame"])]
        result["preview_png"] = preview_data_url(ct_slice.hu, ct_slice.window)


def request_timing(started: float, detected: SliceDetections) -> dict[str, float]:
    """Milliseconds of a request's steps: reading the DICOM files, building the model inputs,
    waiting for the model, the model calls that carried its slices, building the answer, and
    the whole request (body reading and waiting for a decode thread are in the total only)."""
    now = time.monotonic()
    return {
        "decode": round(detected.decoded.decode_s * 1000, 1),
        "preprocess": round(detected.decoded.preprocess_s * 1000, 1),
        "queue_wait": round(detected.batch.queue_wait_s * 1000, 1),
        "model": round(detected.batch.model_s * 1000, 1),
        "response": round((now - detected.inferred_at) * 1000, 1),
        "total": round((now - started) * 1000, 1),
    }


class DetectionRequests:
    """Answers detection requests with the parts it is given (it owns none of them): the detector,
    the admission cap, readiness and the 503 builder; ``max_request_bytes``, ``max_files``,
    ``default_min_score`` and ``timeout_s`` are the settings of the same names."""

    def __init__(
        self,
        detector: SliceDetector,
        admission: Admission,
        readiness: Readiness,
        unavailable: Unavailable,
        *,
        max_request_bytes: int,
        max_files: int,
        default_min_score: float,
        timeout_s: float,
    ) -> None:
        self.detector = detector
        self.admission = admission
        self.readiness = readiness
        self.unavailable = unavailable
        self.max_request_bytes = max_request_bytes
        self.max_files = max_files
        self.default_min_score = default_min_score
        self.timeout_s = timeout_s

    async def answer(self, request: Request, parse: UploadParser, *, min_score: float | None, preview: bool) -> Response:
        """The whole life of a detect request: admission, body under the limit, parsing, detection."""
        started = time.monotonic()
        as_dicom = wants_dicom(request.headers.get("accept"))
        if not self.readiness.ready:
            raise self.unavailable.error("not_ready", WARMING_UP)
        score = self.default_min_score if min_score is None else min_score
        with self.admission.slot():
            body = await read_body(request, self.max_request_bytes)
            uploads = parse(body, request.headers.get("content-type"), self.max_files)
            del body
            try:
                return await self._detect(uploads, score, preview, as_dicom, started)
            except BatcherError as error:
                raise refusal_of_batcher(error, self.unavailable, self.timeout_s) from None

    async def _detect(self, uploads: list[Upload], min_score: float, preview: bool, as_dicom: bool, started: float) -> Response:
        deadline = started + self.timeout_s
        detected = await self.detector.detect(uploads, min_score=min_score, deadline=deadline)
        if preview and not as_dicom:
            await self.detector.pool.run(_attach_previews, detected.results, detected.decoded, deadline=deadline)
        series = sorted({hash_uid(str(s.series_instance_uid)) for s in detected.decoded.slices})
        found = sum(len(result["detections"]) for result in detected.results)
        timing = request_timing(started, detected)
        logger.info(
            "detected %d lesion(s) on %d slice(s) from %d file(s), series %s, %.0f ms",
            found, len(detected.results), len(uploads), ",".join(series), timing["total"],
        )
        if as_dicom:
            document = await self.detector.sr(detected, min_score=min_score, deadline=deadline)
            return Response(
                document, media_type=DICOM_MEDIA_TYPE, headers={"Content-Disposition": 'attachment; filename="fsd-sr.dcm"'}
            )
        model = self.detector.runtime.model
        return JSONResponse({"model": {"name": model.name, "version": model.version}, "results": detected.results, "timing_ms": timing})
