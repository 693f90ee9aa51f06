"""Where findings go, behind one small interface: a destination sends one SR or raises
:class:`DeliveryError`.

The error says whether the refusal is permanent (the peer will never take this SR: a bad
request, wrong credentials, a failure status that sending again cannot change) or transient
(down, busy, timed out); retrying or dead-lettering is the delivery queue's job
(:mod:`service.delivery.queue`). ``describe`` names the destination for logs and metrics without
secrets. The destinations are :class:`~service.delivery.stow_client.StowDestination` and
:class:`~service.delivery.store_scu.DimseDestination`; the app factory builds the configured one.
"""

from __future__ import annotations

from typing import Protocol

from service.delivery.sr_store import KeptSR


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

    def send(self, sr: KeptSR) -> None: ...
