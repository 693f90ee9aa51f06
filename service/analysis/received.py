"""What analysis takes from intake: a received CT instance, parsed and checked once.

Intake (:mod:`service.ingest.instances`) parses each instance when it arrives, runs every check
short of decoding its pixels, and keeps the result (:class:`ReceivedInstance`); the analysis
decodes that same parsed data set (:func:`decode`) and the SR reads its header from it. The
encoded bytes are not kept beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom import Dataset

from fsd.io.dicom import CTSlice, ParsedCT, decode_ct


@dataclass(frozen=True)
class ReceivedInstance:
    """A CT instance accepted by intake.

    ``parsed`` is its file parsed and checked (checks 1 to 9 of :func:`fsd.io.dicom.read_ct`),
    ``label`` names it in messages ("part 3", "C-STORE instance"), the UIDs route it, ``patient``
    is a digest of its patient's identity (PatientID and PatientName, never kept in clear) and
    ``size`` the encoded bytes it counts for in the memory limits.
    """

    parsed: ParsedCT
    label: str
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    patient: str
    size: int

    @property
    def header(self) -> Dataset:
        """The instance's data set (the SR reads patient, study and evidence attributes from it)."""
        return self.parsed.dataset


def decode(instance: ReceivedInstance) -> list[CTSlice]:
    """The instance's CT slices in HU (one per frame); DicomError when a decoder fails on it."""
    return decode_ct(instance.parsed)
