"""Analyse one study's received instances: model inputs -> batcher -> per-slice results -> SR,
then keep the SR for WADO-RS and queue it for the configured destination.

Both study inputs end here: STOW-RS (:mod:`service.stow`, inside the request and its deadline)
and the DICOM node (:mod:`service.dimse.node`, in the background). The inputs come from
:func:`fsd.inference.slice_inputs_from_ct`, the results from
:func:`fsd.inference.detections_to_result` and the SR from :func:`service.sr.build_sr`: the same
calls ``/v1/detect`` makes. A failure is an :class:`AnalysisError` with the storage status the
refused instances get and whether trying again later may help.

A study's SR carries at most ``sr_max_findings`` detections, the highest scores first: it goes
into the radiologist's worklist, where hundreds of weak candidates help nobody (and building a
TID 1500 document costs time per finding).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from fsd.inference import SliceInput, detections_to_result, slice_inputs_from_ct
from fsd.io.dicom import CTSlice, hash_uid
from service.batcher import (
    BatcherClosedError,
    BatcherError,
    DeadlineExceededError,
    OutOfMemoryError,
    QueueFullError,
)
from service.detection import sr_document
from service.dicom_status import OUT_OF_RESOURCES, PROCESSING_FAILURE
from service.errors import ServiceError
from service.instances import DecodedInstance
from service.pool import in_pool
from service.sr_store import KeptSR, describe_sr
from service.state import ServiceState

logger = logging.getLogger("fsd.service")
T = TypeVar("T")

#: batcher failures that may pass when retried later (load, shutdown of this instance, memory)
_TRANSIENT = (QueueFullError, DeadlineExceededError, OutOfMemoryError, BatcherClosedError)


class AnalysisError(Exception):
    """The study could not be analysed; ``status`` is the storage status for its instances."""

    def __init__(self, status: int, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.transient = transient


@dataclass(frozen=True)
class AnalysedStudy:
    study_instance_uid: str
    instances: int
    slices: int
    detections: int
    sr: KeptSR


def _prepare(decoded: Sequence[DecodedInstance], state: ServiceState) -> tuple[list[CTSlice], list[SliceInput]]:
    slices: list[CTSlice] = []
    sources: list[str] = []
    for item in decoded:
        slices.extend(item.slices)
        sources.extend([item.instance.label] * len(item.slices))
    try:
        return slices, slice_inputs_from_ct(slices, state.model.preprocess, sources)
    except ValueError as error:
        raise AnalysisError(
            PROCESSING_FAILURE, f"the images cannot be prepared for the model: {error}", transient=False
        ) from None


def _sr(state: ServiceState, results: list[dict[str, Any]], decoded: Sequence[DecodedInstance], min_score: float) -> KeptSR:
    try:
        document = sr_document(state, results, [item.instance.data for item in decoded], min_score)
    except ServiceError as error:
        raise AnalysisError(PROCESSING_FAILURE, error.message, transient=False) from None
    return describe_sr(document)


def strongest_findings(results: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """``results`` keeping only the ``limit`` highest-scoring detections over all slices."""
    scored = sorted(
        ((detection["score"], index, rank) for index, result in enumerate(results) for rank, detection in enumerate(result["detections"])),
        key=lambda item: (-item[0], item[1], item[2]),
    )
    kept = {(index, rank) for _, index, rank in scored[:limit]}
    return [
        {**result, "detections": [d for rank, d in enumerate(result["detections"]) if (index, rank) in kept]}
        for index, result in enumerate(results)
    ]


async def analyse_study(
    state: ServiceState,
    decoded: Sequence[DecodedInstance],
    *,
    min_score: float,
    timeout_s: float | None,
    source: str,
) -> AnalysedStudy:
    """Run one study's decoded instances through the model, keep and queue its SR.

    ``timeout_s`` bounds the wait for the model (None: no bound). Raises AnalysisError.
    """
    started = time.monotonic()
    study = decoded[0].instance.study_instance_uid
    slices, inputs = await in_pool(state, _prepare, decoded, state)
    try:
        detections = await state.batcher.submit([item.image for item in inputs], timeout_s=timeout_s)
    except BatcherError as error:
        transient = isinstance(error, _TRANSIENT)
        status = OUT_OF_RESOURCES if transient else PROCESSING_FAILURE
        raise AnalysisError(status, f"the model could not run ({type(error).__name__})", transient=transient) from None
    class_names = state.model.class_names
    results = [detections_to_result(d, i, class_names, min_score) for d, i in zip(detections, inputs)]
    results = strongest_findings(results, state.settings.sr_max_findings)
    sr = await in_pool(state, _sr, state, results, decoded, min_score)
    state.sr_store.keep(sr)
    if state.delivery is not None:
        state.delivery.enqueue(sr)
    found = sum(len(result["detections"]) for result in results)
    state.metrics.studies.labels(source, "analysed").inc()
    logger.info(
        "%s study %s: %d lesion(s) on %d slice(s) of %d instance(s), SR %s, %.0f ms",
        source, hash_uid(study), found, len(results), len(decoded), hash_uid(sr.sop_instance_uid),
        (time.monotonic() - started) * 1000,
    )
    return AnalysedStudy(study, len(decoded), len(slices), found, sr)
