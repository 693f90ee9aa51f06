"""Prometheus metrics of one app instance, in its own registry (tests build many apps).

Every stage counts what it does in the :class:`ServiceMetrics` the app factory builds and hands
to it; the HTTP layer exports them at ``/metrics`` and counts requests itself
(:mod:`service.http.metrics_middleware`).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class ServiceMetrics:
    """The service's collectors, registered in a fresh :class:`CollectorRegistry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fsd_http_requests", "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "fsd_http_request_duration_seconds", "Time from request start to the end of the response.",
            ["route"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.batch_size = Histogram(
            "fsd_batch_size_slices", "Slices per model call.", buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.inference_seconds = Histogram(
            "fsd_inference_duration_seconds", "Duration of one model call.", buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge("fsd_queue_depth_slices", "Slices waiting for the model.", registry=self.registry)
        self.slices = Counter("fsd_slices_processed", "Slices run through the model.", registry=self.registry)
        self.oom_splits = Counter(
            "fsd_oom_splits", "Batches split in half after running out of memory.", registry=self.registry
        )
        self.rejected = Counter(
            "fsd_requests_rejected", "Requests turned away by the batcher or the admission limit, by reason.",
            ["reason"], registry=self.registry,
        )
        self.ready = Gauge("fsd_ready", "1 once the model is loaded and warmed up.", registry=self.registry)
        self.instances = Counter(
            "fsd_instances_received", "DICOM instances received by STOW-RS or C-STORE, by source and status.",
            ["source", "status"], registry=self.registry,
        )
        self.studies = Counter(
            "fsd_studies_analysed", "Studies analysed (an SR made) or failed, by source.",
            ["source", "outcome"], registry=self.registry,
        )
        self.associations = Counter(
            "fsd_dicom_associations", "Association requests to the DICOM node, by outcome.",
            ["outcome"], registry=self.registry,
        )
        self.dropped = Counter(
            "fsd_instances_dropped",
            "Accepted instances left out of their study's analysis (not decodable after all), by source and status.",
            ["source", "status"], registry=self.registry,
        )
        self.pending_bytes = Gauge(
            "fsd_dicom_pending_bytes", "Encoded bytes of received instances (STOW-RS and DIMSE) waiting for or in analysis.",
            registry=self.registry,
        )
        self.pending_studies = Gauge(
            "fsd_dicom_pending_studies", "Studies received (STOW-RS and DIMSE) and not due for analysis yet.",
            registry=self.registry,
        )
        self.deliveries = Counter(
            "fsd_sr_deliveries", "SR delivery attempts to the configured destination, by outcome.",
            ["destination", "outcome"], registry=self.registry,
        )
        self.delivery_pending = Gauge(
            "fsd_sr_delivery_pending", "SRs waiting for delivery (including those being retried).", registry=self.registry
        )
        self.delivery_oldest_s = Gauge(
            "fsd_sr_delivery_oldest_pending_seconds", "Age of the oldest SR waiting for delivery.", registry=self.registry
        )
        self.resumed = Counter(
            "fsd_studies_resumed", "Studies reloaded from the intake spool at start-up (acknowledged before a restart).",
            registry=self.registry,
        )
        self.kept_srs = Gauge("fsd_sr_kept", "SRs kept for WADO-RS retrieval.", registry=self.registry)
        self.kept_sr_bytes = Gauge("fsd_sr_kept_bytes", "Bytes of SRs kept for WADO-RS retrieval.", registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
