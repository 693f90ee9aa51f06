"""Where findings go: the SR destination configured in the settings, behind one small interface.

A destination sends one SR (Part 10 bytes) or raises :class:`DeliveryError`, saying whether the
refusal is permanent (the peer will never take this SR: a bad request, wrong credentials, a
failure status that sending again cannot change) or transient (down, busy, timed out);
retrying or dead-lettering is the delivery queue's job (:mod:`service.delivery`). ``describe``
names the destination for logs and metrics without secrets.
"""

from __future__ import annotations

from typing import Protocol

from service.settings import ServiceSettings


class DeliveryError(Exception):
    """One delivery attempt failed; the message says why (no patient data, no secrets).

    ``permanent``: the destination refused this SR for good, so trying again cannot help.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Destination(Protocol):
    """Where SRs go: ``send`` delivers one SR or raises DeliveryError."""

    kind: str

    def describe(self) -> str: ...

    def send(self, data: bytes) -> None: ...


def destination_from_settings(settings: ServiceSettings) -> Destination | None:
    """The configured SR destination, or None when findings are only kept for WADO-RS."""
    if settings.sr_destination_stow_url is not None:
        from service.stow_client import StowDestination

        authorization = settings.sr_destination_authorization
        return StowDestination(
            settings.sr_destination_stow_url,
            authorization=authorization.get_secret_value() if authorization is not None else None,
            timeout_s=settings.delivery_timeout_s,
            ca_bundle=settings.sr_destination_ca_bundle,
        )
    if settings.sr_destination_ae_title is not None:
        from service.dimse.store_scu import DimseDestination

        assert settings.sr_destination_host is not None and settings.sr_destination_port is not None
        return DimseDestination(
            called_ae_title=settings.sr_destination_ae_title,
            host=settings.sr_destination_host,
            port=settings.sr_destination_port,
            calling_ae_title=settings.dicom_ae_title,
            timeout_s=settings.delivery_timeout_s,
        )
    return None
