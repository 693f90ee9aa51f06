"""Per-slice detection of the files one request sent: ``/v1/detect``, and STOW-RS when the
client asks for the detection JSON or the SR instead of the store response.

files -> parsed and decoded once (decode pool) -> model inputs -> dynamic batcher (model workers)
-> per-slice results via :func:`fsd.inference.detections_to_result`, and on request their SR,
built once by delivery (:func:`service.delivery.sr.build_sr`) from the same parsed headers. The
inputs come from :func:`fsd.inference.slice_inputs_from_ct`, the preprocessing ``fsd predict``
and training use. Everything stays in memory; every step runs within the request's deadline.

A file that cannot be used fails the whole request: :class:`fsd.io.dicom.DicomError` with the
file's label, :class:`UnusableUploadError` for what only the set of files shows (a repeated instance,
geometry the preprocessing cannot use). Batcher refusals (:class:`~.batcher.BatcherError`) and a
passed deadline are the caller's to answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pydicom import Dataset

from fsd.errors import FsdError
from fsd.inference import SliceInput, detections_to_result, slice_inputs_from_ct
from fsd.io.dicom import CTSlice, DicomError, decode_ct, parse_ct
from fsd.preprocess import PreprocessConfig
from service.analysis.batcher import DynamicBatcher, JobTiming
from service.analysis.pool import DecodePool
from service.analysis.runtime import ModelRuntime
from service.delivery.sr import build_sr


@dataclass(frozen=True)
class Upload:
    """One DICOM file sent with a request: its bytes, a label for messages and a source name for results."""

    data: bytes
    label: str
    source: str


class UnusableUploadError(FsdError):
    """The files of a request cannot be analysed together; ``code`` says why (answered 422)."""


@dataclass(frozen=True)
class DecodedUploads:
    """The slices read from the uploads, the model inputs made of them, each file's header (its
    parsed data set), and what reading and preparing took."""

    slices: list[CTSlice]
    inputs: list[SliceInput]
    headers: list[Dataset] = field(repr=False)
    decode_s: float = 0.0
    preprocess_s: float = 0.0


def _reject_duplicates(slices: list[CTSlice], labels: list[str]) -> None:
    seen: dict[tuple[str, int], str] = {}
    for ct_slice, label in zip(slices, labels):
        key = (ct_slice.sop_instance_uid, ct_slice.frame)
        if key in seen:
            raise UnusableUploadError(f"{label} repeats the SOP instance of {seen[key]}; send each image once.", "duplicate_instance")
        seen[key] = label


def decode_uploads(uploads: list[Upload], preprocess: PreprocessConfig, max_pixel_bytes: int) -> DecodedUploads:
    """Read every upload as CT (parsing it once) and prepare one model input per slice (per frame).

    A file that cannot be used fails the whole request with its DicomError code, its message
    prefixed by the file's label.
    """
    started = time.perf_counter()
    slices: list[CTSlice] = []
    sources: list[str] = []
    labels: list[str] = []
    headers: list[Dataset] = []
    for upload in uploads:
        try:
            parsed = parse_ct(upload.data, max_pixel_bytes=max_pixel_bytes)
            file_slices = decode_ct(parsed)
        except DicomError as error:
            raise DicomError(f"{upload.label}: {error.message}", error.code) from None
        headers.append(parsed.dataset)
        slices.extend(file_slices)
        sources.extend([upload.source] * len(file_slices))
        labels.extend([upload.label] * len(file_slices))
    _reject_duplicates(slices, labels)
    decoded = time.perf_counter()
    try:
        inputs = slice_inputs_from_ct(slices, preprocess, sources)
    except ValueError as error:  # geometry the preprocessing cannot use; read_ct lets little through
        raise UnusableUploadError(f"The images cannot be prepared for the model: {error}.", "invalid_geometry") from None
    return DecodedUploads(
        slices=slices, inputs=inputs, headers=headers, decode_s=decoded - started, preprocess_s=time.perf_counter() - decoded
    )


@dataclass(frozen=True)
class SliceDetections:
    """What one request's detection made: a result per slice, the decoded files behind them, the
    batcher's account of its slices, and when the model was done (``time.monotonic()``)."""

    results: list[dict[str, Any]]
    decoded: DecodedUploads
    batch: JobTiming
    inferred_at: float


class SliceDetector:
    """Detection of one request's files, on the runtime, batcher and decode pool it is given
    (it owns none of them); ``max_pixel_bytes`` is the pixel budget of one file."""

    def __init__(self, runtime: ModelRuntime, batcher: DynamicBatcher, pool: DecodePool, *, max_pixel_bytes: int) -> None:
        self.runtime = runtime
        self.batcher = batcher
        self.pool = pool
        self.max_pixel_bytes = max_pixel_bytes

    async def detect(self, uploads: list[Upload], *, min_score: float, deadline: float) -> SliceDetections:
        """Per-slice results of ``uploads``, all within ``deadline`` (``time.monotonic()``)."""
        model = self.runtime.model
        decoded = await self.pool.run(decode_uploads, uploads, model.preprocess, self.max_pixel_bytes, deadline=deadline)
        batch = JobTiming()
        detections = await self.batcher.submit(
            [item.image for item in decoded.inputs], timeout_s=max(deadline - time.monotonic(), 0.001), timing=batch
        )
        inferred_at = time.monotonic()
        results = [detections_to_result(d, i, model.class_names, min_score) for d, i in zip(detections, decoded.inputs)]
        return SliceDetections(results, decoded, batch, inferred_at)

    async def sr(self, detected: SliceDetections, *, min_score: float, deadline: float) -> bytes:
        """The SR (Part 10 bytes) of ``detected``; SRError when its files cannot make one."""
        model = self.runtime.model
        sr = await self.pool.run(
            lambda: build_sr(
                detected.results, detected.decoded.headers, model_name=model.name, model_version=model.version, min_score=min_score
            ),
            deadline=deadline,
        )
        return sr.data
