"""Logging of the service: a stream handler on the ``fsd`` logger, and no patient data from
the DICOM libraries either.

What the service itself logs is chosen at the call sites: counts, timings, error codes and
hashed UIDs (:func:`fsd.io.dicom.hash_uid`), never patient names, ids or birth dates. The
libraries need help: pydicom's validation messages quote the offending value ("Invalid value for
VR PN: 'Doe^John'"), as a log record *and* a Python warning; highdicom warns with the patient
name when it has a single component, and its INFO/DEBUG records name instance UIDs.
:func:`protect_library_logs` withholds quoted values from pydicom's records, drops both
libraries' UserWarnings, and keeps highdicom's logger at WARNING.
"""

from __future__ import annotations

import logging
import re
import warnings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
WITHHELD = "'<withheld>'"


class WithholdQuotedValues(logging.Filter):
    """Replace every quoted value in a record's message with ``'<withheld>'``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _QUOTED.sub(WITHHELD, record.getMessage())
        record.args = None
        return True


def protect_library_logs() -> None:
    """Keep DICOM values and UIDs out of pydicom's and highdicom's logs (idempotent)."""
    pydicom_logger = logging.getLogger("pydicom")
    if not any(isinstance(existing, WithholdQuotedValues) for existing in pydicom_logger.filters):
        pydicom_logger.addFilter(WithholdQuotedValues())
    highdicom_logger = logging.getLogger("highdicom")
    if highdicom_logger.level < logging.WARNING:  # NOTSET (0) would inherit a DEBUG root
        highdicom_logger.setLevel(logging.WARNING)
    for library in ("pydicom", "highdicom"):  # e.g. highdicom warns 'The string "Doe" is unlikely ...'
        warnings.filterwarnings("ignore", category=UserWarning, module=rf"{library}(\.|$)")


def configure_logging(level: str) -> None:
    """Send ``fsd.*`` records to stderr at ``level`` (idempotent) and protect the library logs."""
    logger = logging.getLogger("fsd")
    logger.setLevel(level.upper())
    if not any(getattr(handler, "_fsd_service", False) for handler in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(FORMAT))
        handler._fsd_service = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
    protect_library_logs()
