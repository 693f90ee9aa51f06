"""The HTTP layer, on top of the flow: requests in, answers out, and the app factory that builds
every object of the service once.

Enters: HTTP requests: ``/v1/detect`` and STOW-RS ``/v1/studies`` bodies (read under the size
limit and split into DICOM parts here: :mod:`.body`, :mod:`.uploads`), WADO-RS reads, the model
card, the probes, the metrics and the viewer page (:mod:`.routes`).

Leaves: JSON answers and DICOM SRs (detections from analysis, SRs from delivery), the PS3.18
store response (from ingest), and every error in one envelope (:mod:`.errors`), every 503 with
``Retry-After`` from one place (:mod:`.unavailable`).

:func:`.app.create_app` turns the settings (:mod:`.settings`) into the objects of each stage,
once, and hands them to the routes as FastAPI dependencies (:mod:`.dependencies`) and to each
other as constructor arguments. Nothing below imports this package.
"""
