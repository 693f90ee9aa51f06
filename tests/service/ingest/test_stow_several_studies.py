"""One STOW-RS request carrying instances of several patients and studies, sent by dicomweb-client
to the running server: stored and answered per PS3.18 (every instance referenced, no study
RetrieveURL since the request concerns several studies), each study analysed on its own, with
its own SR over its own instances and its own patient. An instance that names a study already
held for another patient is refused (A900) and left out of that study's SR."""

from __future__ import annotations

import pydicom
import pytest
from dicom_helpers import fresh_study, retrieve_when_analysed
from dicom_helpers import sr_evidence as _evidence
from service_helpers import AUTH, live_server

pytestmark = pytest.mark.slow
PATIENTS = ("FSD-PATIENT-A", "FSD-PATIENT-B", "FSD-PATIENT-C")


def _study_of(series_uploads, patient: str, study: str | None = None) -> list[pydicom.Dataset]:
    """The first slices of the test series as a new study of ``patient``."""
    return fresh_study([data for _, data in series_uploads[:3]], patient=patient, study=study)


def _sr_when_analysed(client, study: str) -> pydicom.Dataset:
    (sr,) = retrieve_when_analysed(client, study)
    return sr


def test_a_request_of_several_patients_and_studies_is_stored_and_analysed_study_by_study(make_app, series_uploads):
    from dicomweb_client.api import DICOMwebClient

    studies = [_study_of(series_uploads, patient) for patient in PATIENTS]
    interleaved = [ds for triple in zip(*studies) for ds in triple]
    with live_server(make_app()) as base:
        client = DICOMwebClient(url=f"{base}/v1", headers=AUTH)
        answer = client.store_instances(interleaved)
        assert [item.ReferencedSOPInstanceUID for item in answer.ReferencedSOPSequence] == [ds.SOPInstanceUID for ds in interleaved]
        assert "FailedSOPSequence" not in answer
        assert "RetrieveURL" not in answer, "a request of several studies has no one study to retrieve"
        for datasets in studies:
            sr = _sr_when_analysed(client, str(datasets[0].StudyInstanceUID))
            assert sr.StudyInstanceUID == datasets[0].StudyInstanceUID
            assert sr.PatientID == datasets[0].PatientID and str(sr.PatientName) == str(datasets[0].PatientName)
            assert _evidence(sr) == {str(ds.SOPInstanceUID) for ds in datasets}, "each SR covers its own study only"


def test_an_instance_claiming_another_patients_study_is_refused_and_the_study_analysed(make_app, series_uploads):
    from dicomweb_client.api import DICOMwebClient

    own = _study_of(series_uploads, PATIENTS[0])
    study = str(own[0].StudyInstanceUID)
    stranger = _study_of(series_uploads, PATIENTS[1], study=study)[0]
    with live_server(make_app()) as base:
        client = DICOMwebClient(url=f"{base}/v1", headers=AUTH)
        answer = client.store_instances([*own, stranger])
        assert [item.ReferencedSOPInstanceUID for item in answer.ReferencedSOPSequence] == [ds.SOPInstanceUID for ds in own]
        (failed,) = answer.FailedSOPSequence
        assert failed.ReferencedSOPInstanceUID == stranger.SOPInstanceUID and failed.FailureReason == 0xA900
        assert answer.RetrieveURL.endswith(f"/v1/studies/{study}")
        sr = _sr_when_analysed(client, study)
        assert sr.PatientID == PATIENTS[0] and _evidence(sr) == {str(ds.SOPInstanceUID) for ds in own}
