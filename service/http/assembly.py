"""The settings turned into what the app factory cannot take from them as plain values: the SR
destination, the delivery queue and the DICOM node's configuration."""

from __future__ import annotations

from service.common.metrics import ServiceMetrics
from service.delivery.destination import Destination
from service.delivery.queue import DeliveryQueue
from service.delivery.sr_spool import SRSpool
from service.delivery.sr_store import SRStore
from service.delivery.store_scu import DimseDestination
from service.delivery.stow_client import StowDestination
from service.http.settings import ServiceSettings
from service.ingest.dicom_node import DicomNodeConfig


def destination_from_settings(settings: ServiceSettings) -> Destination | None:
    """The configured SR destination, or None when findings are only kept for WADO-RS."""
    if settings.sr_destination_stow_url is not None:
        authorization = settings.sr_destination_authorization
        return StowDestination(
            settings.sr_destination_stow_url,
            authorization=authorization.get_secret_value() if authorization is not None else None,
            timeout_s=settings.delivery_timeout_s,
            ca_bundle=settings.sr_destination_ca_bundle,
        )
    if settings.sr_destination_ae_title is not None:
        assert settings.sr_destination_host is not None and settings.sr_destination_port is not None
        return DimseDestination(
            called_ae_title=settings.sr_destination_ae_title,
            host=settings.sr_destination_host,
            port=settings.sr_destination_port,
            calling_ae_title=settings.dicom_ae_title,
            timeout_s=settings.delivery_timeout_s,
        )
    return None


def delivery_queue(settings: ServiceSettings, metrics: ServiceMetrics, sr_store: SRStore) -> DeliveryQueue | None:
    """The SR delivery queue to the configured destination (with its spool, if set), or None."""
    destination = destination_from_settings(settings)
    if destination is None:
        return None
    return DeliveryQueue(
        destination,
        max_queue=settings.delivery_max_queue,
        initial_s=settings.delivery_retry_initial_s,
        max_s=settings.delivery_retry_max_s,
        metrics=metrics,
        sr_store=sr_store,
        spool=SRSpool(settings.sr_spool_dir) if settings.sr_spool_dir is not None else None,
    )


def dicom_node_config(settings: ServiceSettings) -> DicomNodeConfig:
    """The DICOM node's part of the settings."""
    return DicomNodeConfig(
        ae_title=settings.dicom_ae_title,
        bind_host=settings.dicom_bind_host,
        port=settings.dicom_port,
        allowed_calling_ae_titles=frozenset(settings.dicom_allowed_calling_ae_titles),
        allowed_hosts=frozenset(settings.dicom_allowed_hosts),
        max_associations=settings.dicom_max_associations,
        timeout_s=settings.dicom_timeout_s,
        max_pixel_bytes=settings.max_pixel_bytes_per_file,
        study_quiet_s=settings.dicom_study_quiet_s,
        min_score=settings.min_score,
    )
