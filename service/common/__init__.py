"""What every stage of the service may use, and nothing of the flow itself.

The metrics registry (:mod:`.metrics`), the DICOM storage statuses (:mod:`.dicom_status`), the
backoff of everything retried (:mod:`.backoff`), the multipart codec (:mod:`.multipart`) and
the code locations of an exception for the logs (:mod:`.tracebacks`). Nothing enters or leaves
here; this package imports no stage.
"""
