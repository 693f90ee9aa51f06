"""The intake spool: received instances on disk from before they are acknowledged until their
study's SR is made and spooled, so that a restart (a crash, a SIGKILL, a power cut after the
fsync) resumes every acknowledged study.

Off by default (``intake_spool_dir``): then intake holds instances in memory only, and a study
acknowledged but not analysed yet is lost when the process dies. When set, the collector
(:mod:`service.ingest.collector`) writes each instance here before it is acknowledged (written to
a temporary name, flushed to disk, renamed) and deletes a study's files once its analysis is
over; at start-up every study found here is held again and analysed at once.

Layout: one folder per batch of a study (the instances of one study received before it became
due; a study that arrives again later is a new batch), holding ``study.json`` (which study, the
input it came by, its score threshold) and one Part 10 file per instance, named by a digest of
its SOP Instance UID. Folders are mode 0700 and files 0600 (the service's user only): they hold
patient data; keep the directory on an encrypted volume, as for any PACS cache. It is bounded by
``max_pending_mib``: an instance is on disk exactly while its study is held.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("fsd.service")
STUDY_FILE = "study.json"
SUFFIX = ".dcm"


@dataclass(frozen=True)
class SpooledStudy:
    """One batch found in the spool at start-up: what ``study.json`` says and its instance files."""

    batch: str
    study_instance_uid: str
    source: str
    min_score: float
    files: list[Path]


def instance_name(sop_instance_uid: str) -> str:
    return f"{hashlib.sha256(sop_instance_uid.encode()).hexdigest()[:32]}{SUFFIX}"


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def _sync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class IntakeSpool:
    """Owns the spool directory (created mode 0700): writes, deletes and lists batches of instances."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)

    def write(self, batch: str, study: dict[str, object], instances: list[tuple[str, bytes]]) -> None:
        """Write ``instances`` ((SOP Instance UID, Part 10 bytes) pairs) into ``batch``, durably,
        with the batch's ``study`` description; raises OSError (nothing of it may be relied on)."""
        folder = self.directory / batch
        folder.mkdir(mode=0o700, exist_ok=True)
        if not (folder / STUDY_FILE).exists():
            _write_atomically(folder / STUDY_FILE, json.dumps(study).encode())
        for sop_instance_uid, data in instances:
            _write_atomically(folder / instance_name(sop_instance_uid), data)
        _sync_directory(folder)

    def remove(self, batch: str, sop_instance_uids: list[str]) -> None:
        """Take back instances written into ``batch`` (their acknowledgement failed)."""
        for uid in sop_instance_uids:
            (self.directory / batch / instance_name(uid)).unlink(missing_ok=True)

    def remove_batch(self, batch: str) -> None:
        """Forget a batch whose analysis is over."""
        shutil.rmtree(self.directory / batch, ignore_errors=True)

    def batches(self) -> Iterator[SpooledStudy]:
        """The batches on disk, oldest first; an unreadable one is logged and left in place."""
        folders = [path for path in self.directory.iterdir() if path.is_dir()]
        for folder in sorted(folders, key=lambda path: path.stat().st_mtime):
            files = sorted(folder.glob(f"*{SUFFIX}"), key=lambda path: path.stat().st_mtime)
            try:
                study = json.loads((folder / STUDY_FILE).read_text())
                found = SpooledStudy(folder.name, str(study["study_instance_uid"]), str(study["source"]), float(study["min_score"]), files)
            except (OSError, ValueError, KeyError, TypeError) as error:
                if not files:  # a batch whose first write failed before any instance: nothing to resume
                    self.remove_batch(folder.name)
                    continue
                logger.error("intake spool: batch %s cannot be read (%s); left in place", folder.name, type(error).__name__)
                continue
            yield found
