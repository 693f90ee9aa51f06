"""Analyse one study's received instances: decode -> model inputs -> batcher -> per-slice results
-> SR, handed to delivery (kept for WADO-RS, queued for the configured destination).

Both study inputs end here, in the background, once ingest finds the study due
(:mod:`service.ingest.scheduler`): STOW-RS and the DICOM node hold the instances parsed and
checked, but not decoded, until then. The instances are decoded now, in the decode pool, a few
at a time; one that cannot be decoded after all (only a compressed frame's decoder can still
fail after the intake checks) is left out of the analysis, counted in
``fsd_instances_dropped_total`` and logged, and the SR references what was analysed. The inputs
come from :func:`fsd.inference.iter_slice_inputs_from_ct`, the results from
:func:`fsd.inference.detections_to_result` and the SR from
:func:`service.delivery.sr.build_sr`: the same calls ``/v1/detect`` makes.

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

import torch

from fsd.inference import SliceInput, detections_to_result, iter_slice_inputs_from_ct
from fsd.io.dicom import CTSlice, DicomError, hash_uid
from service.analysis.batcher import (
    BatcherClosedError,
    BatcherError,
    DeadlineExceededError,
    Detection,
    DynamicBatcher,
    OutOfMemoryError,
    QueueFullError,
)
from service.analysis.pool import DecodePool
from service.analysis.received import ReceivedInstance, decode
from service.analysis.runtime import ModelRuntime
from service.common.backoff import backoff_s
from service.common.dicom_status import status_of_dicom_error
from service.common.metrics import ServiceMetrics
from service.delivery.outbox import SROutbox
from service.delivery.sr import SRError, build_sr
from service.delivery.sr_store import KeptSR

logger = logging.getLogger("fsd.service")

#: most slices made into model inputs and submitted to the batcher at once
CHUNK_SLICES = 64
#: instances decoded per call into the decode pool (so HTTP requests get their turn)
DECODE_GROUP = 16
#: times a chunk may run out of memory before the study fails
OUT_OF_MEMORY_ATTEMPTS = 3


class AnalysisError(Exception):
    """The study could not be analysed; the message says why (no patient data).

    ``interrupted``: the service stopped before the analysis could finish (its instances are
    still worth analysing after a restart); otherwise analysing it again would fail again.
    """

    def __init__(self, message: str, *, interrupted: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.interrupted = interrupted


@dataclass(frozen=True)
class AnalysedStudy:
    """What one analysis made: counts, and the SR handed to delivery (``sr_spooled``: False when
    the SR spool could not write it, so only memory holds it until it is delivered)."""

    study_instance_uid: str
    instances: int
    slices: int
    detections: int
    sr: KeptSR
    sr_spooled: bool


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


def chunk_slices(max_queue_slices: int) -> int:
    """Slices per batcher submission: small enough to enter a queue that is three quarters full."""
    return max(1, min(CHUNK_SLICES, max_queue_slices // 4))


def _decode_group(instances: Sequence[ReceivedInstance]) -> list[list[CTSlice] | DicomError]:
    outcomes: list[list[CTSlice] | DicomError] = []
    for instance in instances:
        try:
            outcomes.append(decode(instance))
        except DicomError as error:
            outcomes.append(error)
    return outcomes


def _next_chunk(inputs: Iterator[SliceInput], size: int) -> list[SliceInput]:
    try:
        return list(itertools.islice(inputs, size))
    except ValueError as error:
        raise AnalysisError(f"the images cannot be prepared for the model: {error}") from None


class StudyAnalyser:
    """One study's analysis from its received instances to its SR, handed to ``outbox``.

    It owns nothing: it uses the runtime, batcher, decode pool and outbox it is given, and counts
    in ``metrics``. ``max_queue_slices`` sizes its chunks, ``chunk_timeout_s`` is each chunk's
    deadline, ``retry_initial_s`` / ``retry_max_s`` the backoff of chunks refused for load, and
    ``sr_max_findings`` caps the findings of an SR.
    """

    def __init__(
        self,
        runtime: ModelRuntime,
        batcher: DynamicBatcher,
        pool: DecodePool,
        outbox: SROutbox,
        metrics: ServiceMetrics,
        *,
        max_queue_slices: int,
        chunk_timeout_s: float,
        retry_initial_s: float,
        retry_max_s: float,
        sr_max_findings: int,
    ) -> None:
        self.runtime = runtime
        self.batcher = batcher
        self.pool = pool
        self.outbox = outbox
        self.metrics = metrics
        self.chunk_size = chunk_slices(max_queue_slices)
        self.chunk_timeout_s = chunk_timeout_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.sr_max_findings = sr_max_findings

    async def analyse(self, instances: Sequence[ReceivedInstance], *, min_score: float, source: str) -> AnalysedStudy:
        """Run one study's instances through the model, hand its SR to delivery. Raises AnalysisError."""
        started = time.monotonic()
        study = instances[0].study_instance_uid
        decoded = await self._decode(instances, source)
        if not decoded:
            raise AnalysisError("none of its instances can be decoded")
        slices: list[CTSlice] = [ct_slice for _, item_slices in decoded for ct_slice in item_slices]
        sources = [instance.label for instance, item_slices in decoded for _ in item_slices]
        headers = [instance.header for instance, _ in decoded]
        del decoded
        model = self.runtime.model
        inputs = iter_slice_inputs_from_ct(slices, model.preprocess, sources)
        results: list[dict[str, Any]] = []
        while chunk := await self.pool.run(_next_chunk, inputs, self.chunk_size):
            detections = await self._detect([item.image for item in chunk], study)
            results.extend(detections_to_result(d, i, model.class_names, min_score) for d, i in zip(detections, chunk))
        del inputs, slices
        results = strongest_findings(results, self.sr_max_findings)
        try:
            sr = await self.pool.run(
                lambda: build_sr(results, headers, model_name=model.name, model_version=model.version, min_score=min_score)
            )
        except SRError as error:
            raise AnalysisError(error.message) from None
        spooled = self.outbox.put(sr)
        found = sum(len(result["detections"]) for result in results)
        self.metrics.studies.labels(source, "analysed").inc()
        logger.info(
            "%s study %s: %d lesion(s) on %d slice(s) of %d instance(s), SR %s, %.0f ms",
            source, hash_uid(study), found, len(results), len(headers), hash_uid(sr.sop_instance_uid),
            (time.monotonic() - started) * 1000,
        )
        return AnalysedStudy(study, len(headers), len(results), found, sr, spooled)

    async def _decode(
        self, instances: Sequence[ReceivedInstance], source: str
    ) -> list[tuple[ReceivedInstance, list[CTSlice]]]:
        decoded: list[tuple[ReceivedInstance, list[CTSlice]]] = []
        for start in range(0, len(instances), DECODE_GROUP):
            group = instances[start : start + DECODE_GROUP]
            for instance, outcome in zip(group, await self.pool.run(_decode_group, group)):
                if isinstance(outcome, DicomError):
                    status = status_of_dicom_error(outcome.code)
                    self.metrics.dropped.labels(source, f"{status:04X}").inc()
                    logger.warning(
                        "study %s: an accepted instance cannot be decoded and is left out of the analysis (%04X): %s: %s",
                        hash_uid(instance.study_instance_uid), status, instance.label, outcome.message,
                    )
                else:
                    decoded.append((instance, outcome))
        return decoded

    async def _detect(self, images: list[torch.Tensor], study: str) -> list[Detection]:
        """Detections for one chunk, retrying refusals for load (capped backoff) until the service stops."""
        attempts = out_of_memory = 0
        while True:
            try:
                return await self.batcher.submit(images, timeout_s=self.chunk_timeout_s)
            except (QueueFullError, DeadlineExceededError) as error:
                reason = type(error).__name__
            except OutOfMemoryError:
                out_of_memory += 1
                if out_of_memory >= OUT_OF_MEMORY_ATTEMPTS:
                    raise AnalysisError("the model ran out of memory on a single slice") from None
                reason = "OutOfMemoryError"
            except BatcherClosedError:
                raise AnalysisError("the model could not run (BatcherClosedError)", interrupted=True) from None
            except BatcherError as error:  # the model failed
                raise AnalysisError(f"the model could not run ({type(error).__name__})") from None
            attempts += 1
            delay = backoff_s(attempts, self.retry_initial_s, self.retry_max_s)
            logger.warning(
                "study %s: %d slice(s) not run (%s, attempt %d); retrying in %.1f s",
                hash_uid(study), len(images), reason, attempts, delay,
            )
            await asyncio.sleep(delay)
