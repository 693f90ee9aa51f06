"""Delivery, the last stage: findings become a DICOM SR that is kept and sent into the PACS.

Enters: the per-slice results of one analysed study, or of one ``/v1/detect`` request, with the
headers of the instances they came from (parsed once, at intake).

Leaves: the SR (TID 1500), built once (:mod:`.sr`); kept in memory for WADO-RS
(:mod:`.sr_store`); queued for the configured destination (:mod:`.queue`), on disk until it is
delivered when an SR spool is configured (:mod:`.sr_spool`); sent by STOW-RS
(:mod:`.stow_client`) or C-STORE (:mod:`.store_scu`) behind one interface (:mod:`.destination`).
:class:`~.outbox.SROutbox` is what analysis hands a study's SR to.

Imports no other stage.
"""
