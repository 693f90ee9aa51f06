"""Analyse one study's received instances: decode -> model inputs -> batcher -> per-slice results
-> SR, then keep the SR for WADO-RS and queue it for the configured destination.

Both study inputs end here, in the background (:mod:`service.study_pipeline`), once the study
is due: STOW-RS and the DICOM node hold only the encoded instances until then. The instances
are decoded now, in the decode pool, a few at a time; one that cannot be decoded after all
(only a compressed frame's decoder can still fail after the intake checks) is left out of the
analysis, counted in ``fsd_instances_dropped_total`` and logged, and the SR references what was
analysed. The inputs come from :func:`fsd.inference.iter_slice_inputs_from_ct`, the results
from :func:`fsd.inference.detections_to_result` and the SR from :func:`service.sr.build_sr`:
the same calls ``/v1/detect`` makes.

Inputs are made and submitted to the batcher in chunks of at most :data:`CHUNK_SLICES` slices
and a quarter of ``max_queue_slices`` (:func:`chunk_slices`), so a 2000-slice study neither
holds all its model inputs at once nor needs an empty queue to be admitted (a request larger
than the queue only enters an empty one, which steady HTTP load may never leave), and each
chunk has the usual deadline (``request_timeout_s``). A chunk refused for load (queue full,
deadline) is retried with a backoff from ``analysis_retry_initial_s`` doubling up to
``analysis_retry_max_s``, for as long as the service runs; out of memory a few times; a model
failure or a closed batcher fails the study with :class:`AnalysisError`.

A study's SR carries at most ``sr_max_findings`` detections, the highest scores first: it goes
into the radiologist's worklist, where hundreds of weak candidates help nobody (and building a
TID 1500 document costs time per finding).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from fsd.inference import SliceInput, detections_to_result, iter_slice_inputs_from_ct
from fsd.io.dicom import CTSlice, hash_uid
from service.backoff import backoff_s
from service.batcher import BatcherError, DeadlineExceededError, Detection, OutOfMemoryError, QueueFullError
from service.detection import sr_document
from service.errors import ServiceError
from service.instances import DecodedInstance, Instance, Refusal, decode
from service.pool import in_pool
from service.sr_store import KeptSR, describe_sr
from service.state import ServiceState

logger = logging.getLogger("fsd.service")

#: most slices made into model inputs and submitted to the batcher at once
CHUNK_SLICES = 64
#: instances decoded per call into the decode pool (so HTTP requests get their turn)
DECODE_GROUP = 16
#: times a chunk may run out of memory before the study fails
OUT_OF_MEMORY_ATTEMPTS = 3


class AnalysisError(Exception):
    """The study could not be analysed; the message says why (no patient data)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class AnalysedStudy:
    """What one analysis made: counts, and the SR (kept and queued for delivery)."""

    study_instance_uid: str
    instances: int
    slices: int
    detections: int
    sr: KeptSR


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


def _decode_group(instances: Sequence[Instance], max_pixel_bytes: int) -> list[DecodedInstance | Refusal]:
    return [decode(instance, max_pixel_bytes) for instance in instances]


async def _decode(state: ServiceState, instances: Sequence[Instance], source: str) -> list[DecodedInstance]:
    decoded: list[DecodedInstance] = []
    for start in range(0, len(instances), DECODE_GROUP):
        group = instances[start : start + DECODE_GROUP]
        for outcome in await in_pool(state, _decode_group, group, state.settings.max_pixel_bytes_per_file):
            if isinstance(outcome, Refusal):
                state.metrics.dropped.labels(source, f"{outcome.status:04X}").inc()
                logger.warning(
                    "study %s: an accepted instance cannot be decoded and is left out of the analysis (%04X): %s",
                    hash_uid(instances[0].study_instance_uid), outcome.status, outcome.message,
                )
            else:
                decoded.append(outcome)
    return decoded


def _next_chunk(inputs: Iterator[SliceInput], size: int) -> list[SliceInput]:
    try:
        return list(itertools.islice(inputs, size))
    except ValueError as error:
        raise AnalysisError(f"the images cannot be prepared for the model: {error}") from None


async def _detect(state: ServiceState, images: list[Any], study: str) -> list[Detection]:
    """Detections for one chunk, retrying refusals for load (capped backoff) until the service stops."""
    attempts = out_of_memory = 0
    while True:
        try:
            return await state.batcher.submit(images, timeout_s=state.settings.request_timeout_s)
        except (QueueFullError, DeadlineExceededError) as error:
            reason = type(error).__name__
        except OutOfMemoryError:
            out_of_memory += 1
            if out_of_memory >= OUT_OF_MEMORY_ATTEMPTS:
                raise AnalysisError("the model ran out of memory on a single slice") from None
            reason = "OutOfMemoryError"
        except BatcherError as error:  # the model failed, or the batcher is closed (shutdown)
            raise AnalysisError(f"the model could not run ({type(error).__name__})") from None
        attempts += 1
        delay = backoff_s(attempts, state.settings.analysis_retry_initial_s, state.settings.analysis_retry_max_s)
        logger.warning(
            "study %s: %d slice(s) not run (%s, attempt %d); retrying in %.1f s",
            hash_uid(study), len(images), reason, attempts, delay,
        )
        await asyncio.sleep(delay)


def chunk_slices(max_queue_slices: int) -> int:
    """Slices per batcher submission: small enough to enter a queue that is three quarters full."""
    return max(1, min(CHUNK_SLICES, max_queue_slices // 4))


def _sr(state: ServiceState, results: list[dict[str, Any]], datas: list[bytes], min_score: float) -> KeptSR:
    try:
        return describe_sr(sr_document(state, results, datas, min_score))
    except ServiceError as error:
        raise AnalysisError(error.message) from None


async def analyse_study(state: ServiceState, instances: Sequence[Instance], *, min_score: float, source: str) -> AnalysedStudy:
    """Run one study's instances through the model, keep and queue its SR. Raises AnalysisError."""
    started = time.monotonic()
    study = instances[0].study_instance_uid
    decoded = await _decode(state, instances, source)
    if not decoded:
        raise AnalysisError("none of its instances can be decoded")
    slices: list[CTSlice] = [ct_slice for item in decoded for ct_slice in item.slices]
    sources = [item.instance.label for item in decoded for _ in item.slices]
    datas = [item.instance.data for item in decoded]
    del decoded
    inputs = iter_slice_inputs_from_ct(slices, state.model.preprocess, sources)
    chunk_size = chunk_slices(state.settings.max_queue_slices)
    class_names = state.model.class_names
    results: list[dict[str, Any]] = []
    while chunk := await in_pool(state, _next_chunk, inputs, chunk_size):
        detections = await _detect(state, [item.image for item in chunk], study)
        results.extend(detections_to_result(d, i, class_names, min_score) for d, i in zip(detections, chunk))
    del inputs, slices
    results = strongest_findings(results, state.settings.sr_max_findings)
    sr = await in_pool(state, _sr, state, results, datas, min_score)
    state.sr_store.keep(sr)
    if state.delivery is not None:
        state.delivery.enqueue(sr)
    found = sum(len(result["detections"]) for result in results)
    state.metrics.studies.labels(source, "analysed").inc()
    logger.info(
        "%s study %s: %d lesion(s) on %d slice(s) of %d instance(s), SR %s, %.0f ms",
        source, hash_uid(study), found, len(results), len(datas), hash_uid(sr.sop_instance_uid),
        (time.monotonic() - started) * 1000,
    )
    return AnalysedStudy(study, len(datas), len(results), found, sr)
