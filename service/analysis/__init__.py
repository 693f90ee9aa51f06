"""Analysis, the middle stage: CT instances in, detections out, on the one model.

Enters: the held instances of one study, handed over by ingest once the study is due
(:mod:`.study`), or the files of one ``/v1/detect`` request, handed over by the HTTP layer
(:mod:`.slices`); both parsed once already.

Leaves: per-slice detections (boxes in the original pixel grid, mm and patient coordinates,
types), and for a study its SR, handed to delivery (:class:`service.delivery.outbox.SROutbox`).

Inside: the exported model on its device (:mod:`.runtime`), the dynamic batcher that merges
slices of concurrent requests into model calls on its model workers (:mod:`.batcher`), and the
decode pool where decoding, input preparation and SR building run (:mod:`.pool`). Imports
delivery, never ingest or the HTTP layer.
"""
