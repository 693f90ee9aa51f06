"""An optional spool directory for SRs waiting for delivery, so a restart does not lose them.

Off by default (``sr_spool_dir``): then the delivery queue lives in memory only. When set,
every SR queued for delivery is written there (one Part 10 file per SR, named by a digest of its
SOP Instance UID, written to a temporary name and renamed, readable by the service user only),
removed once delivered or dead-lettered, and the SRs found there at start-up are queued again.

Only the service's own SRs are ever written, never received images. An SR names its patient,
so the directory holds patient data: keep it on an encrypted volume that only the service can
read, as for any PACS cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from service.delivery.sr_store import KeptSR, describe_sr

logger = logging.getLogger("fsd.service")
SUFFIX = ".dcm"


class SRSpool:
    """SRs waiting for delivery, one file each in ``directory`` (created, mode 0700)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _path(self, sop_instance_uid: str) -> Path:
        return self.directory / f"{hashlib.sha256(sop_instance_uid.encode()).hexdigest()[:32]}{SUFFIX}"

    def save(self, sr: KeptSR) -> None:
        """Write ``sr`` (atomically: a reader never sees half a file)."""
        path = self._path(sr.sop_instance_uid)
        temporary = path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(sr.data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)

    def remove(self, sop_instance_uid: str) -> None:
        """Forget an SR (delivered or dead-lettered)."""
        self._path(sop_instance_uid).unlink(missing_ok=True)

    def load(self) -> list[KeptSR]:
        """The SRs in the spool, oldest first; unreadable files are logged and left where they are."""
        found: list[KeptSR] = []
        for path in sorted(self.directory.glob(f"*{SUFFIX}"), key=lambda item: item.stat().st_mtime):
            try:
                found.append(describe_sr(path.read_bytes()))
            except Exception as error:  # a damaged file must not stop the service; it stays for a person to look at
                logger.error("SR spool: %s cannot be read (%s); left in place", path.name, type(error).__name__)
        return found
