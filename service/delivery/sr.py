"""Detections as a DICOM Structured Report: TID 1500 Measurement Report built with highdicom.

One planar ROI group (TID 1410) per detection: the box as a closed 5-point SCOORD POLYLINE in
the source image's pixel grid (DICOM's image coordinates put the top-left corner of the first
pixel at 0,0, exactly like ``box_px``), finding type "Lesion", the DeepLesion type as the
finding site, the long-axis estimate (mm) and the lesion probability as measurements, and the
algorithm's name and version. A typed model's finding also says which lesion type it is, with
how likely: a qualitative evaluation "Lesion type" whose value is the type, and a measurement
"Lesion type probability", P(type | lesion) (UCUM "1"). No standard code names DeepLesion's
coarse lesion types, so both concepts and the eight types are coded in the private scheme
``99FSD``, which the SR identifies in its Coding Scheme Identification Sequence; the SNOMED
finding site stays beside them for readers that know only standard codes. With no detection the
report holds one group saying "Lesion: Absent" over the source images. Content Qualification is RESEARCH, and the series description
and the algorithm parameters carry the research-use notice.

Patient and study attributes and the evidence references come from the headers of the files
the results came from: their data sets as intake parsed them (never parsed again here). The SR
is built once: :func:`build_sr` returns it encoded, with its data set, UIDs and metadata
(:class:`~service.delivery.sr_store.KeptSR`), which delivery uses as they are. What cannot make a valid SR raises
:class:`SRError` with a stable code.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import highdicom as hd
import numpy as np
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom import dcmwrite
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import CTImageStorage, generate_uid
from pydicom.valuerep import DA, TM

from fsd.constants import RESEARCH_USE_ONLY
from fsd.errors import FsdError
from service.delivery.sr_store import KeptSR, describe_sr

MANUFACTURER = "FSD lesion detection (research software)"
SERIES_DESCRIPTION = "FSD lesion detections - research use only"
SR_SERIES_NUMBER = 9901

#: DeepLesion coarse lesion type -> pydicom SNOMED CT code keyword for its finding site
FINDING_SITES: dict[str, str] = {
    "bone": "Bone",
    "abdomen": "Abdomen",
    "mediastinum": "Mediastinum",
    "liver": "Liver",
    "lung": "Lung",
    "kidney": "Kidney",
    "soft_tissue": "SoftTissue",
    "pelvis": "Pelvis",
}
#: the private coding scheme of the lesion types (PS3.3 8.2: private designators begin with "99")
FSD_SCHEME = "99FSD"
CODING_SCHEME = CodingSchemeIdentificationItem(
    designator=FSD_SCHEME,
    name="FSD lesion types (DeepLesion coarse lesion types)",
    responsible_organization="FSD lesion detection (research software)",
)
#: concept name of the qualitative evaluation whose value is the finding's lesion type
LESION_TYPE = hd.sr.CodedConcept("LESION-TYPE", FSD_SCHEME, "Lesion type")
#: concept name of the measurement P(type | lesion) of that type
LESION_TYPE_PROBABILITY = hd.sr.CodedConcept("TYPE-PROBABILITY", FSD_SCHEME, "Lesion type probability")


def lesion_type_code(name: str) -> hd.sr.CodedConcept:
    """The coded value of lesion type ``name`` (a class name of the model card, e.g. "soft_tissue")."""
    value = "DL-" + name.upper().replace("_", "-")
    return hd.sr.CodedConcept(value[:16], FSD_SCHEME, f"{name.replace('_', ' ')} lesion")


#: Type 2 patient/study attributes highdicom copies from the first evidence instance
_TYPE2_ATTRIBUTES = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
)


class SRError(FsdError):
    """No valid SR can be built from these files; ``code`` is stable, the message has no patient data."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code)


def _evidence(header: Dataset) -> Dataset:
    """A copy of ``header`` without its pixels, with what highdicom needs: SOP class, study UID,
    Type 2 attributes."""
    evidence = Dataset()
    evidence.update(header)
    for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if keyword in evidence:
            del evidence[keyword]
    if "SOPClassUID" not in evidence:
        meta_class = getattr(getattr(header, "file_meta", None), "MediaStorageSOPClassUID", None)
        evidence.SOPClassUID = meta_class or CTImageStorage
    if not evidence.get("StudyInstanceUID"):
        raise SRError("missing_tag", "A DICOM SR needs StudyInstanceUID (0020,000D), which an uploaded file lacks.")
    for keyword in _TYPE2_ATTRIBUTES:
        if keyword not in evidence:
            setattr(evidence, keyword, "")
    for keyword, parse in (("StudyDate", DA), ("PatientBirthDate", DA), ("StudyTime", TM)):
        try:
            parse(str(evidence[keyword].value or ""))
        except (ValueError, TypeError):
            setattr(evidence, keyword, "")  # a malformed date/time would make the SR itself invalid
    return evidence


def _check_one_patient(evidence: Sequence[Dataset]) -> None:
    patients = {(str(item.PatientID), str(item.PatientName)) for item in evidence}
    if len(patients) > 1:
        raise SRError("mixed_patients", "A DICOM SR covers one patient; the uploaded files belong to several.")


def _algorithm(name: str, version: str, min_score: float) -> hd.sr.AlgorithmIdentification:
    return hd.sr.AlgorithmIdentification(
        name=name, version=version, parameters=[f"min_score={min_score:g}", RESEARCH_USE_ONLY]
    )


def _polyline(box: Sequence[float]) -> np.ndarray:
    x1, y1, x2, y2 = (float(value) for value in box)
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]], dtype=np.float64)


def _source_image(evidence: Dataset, frame: int) -> hd.sr.SourceImageForRegion:
    frames = int(evidence.get("NumberOfFrames", 1) or 1)
    return hd.sr.SourceImageForRegion(
        referenced_sop_class_uid=evidence.SOPClassUID,
        referenced_sop_instance_uid=evidence.SOPInstanceUID,
        referenced_frame_numbers=[frame] if frames > 1 else None,
    )


def _detection_group(
    number: int, detection: dict[str, Any], source: hd.sr.SourceImageForRegion, algorithm: hd.sr.AlgorithmIdentification
) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    site = FINDING_SITES.get(str(detection["type"]))
    label = f"lesion {number}: {detection['type']} (score {detection['score']:.3f})"
    measurements = [
        hd.sr.Measurement(name=codes.SCT.LongAxis, value=float(detection["long_diameter_mm"]), unit=codes.UCUM.Millimeter),
        hd.sr.Measurement(name=codes.DCM.Probability, value=float(detection["score"]), unit=codes.UCUM.NoUnits),
    ]
    evaluations = None
    if detection.get("type_id") is not None:  # a typed model (a binary one says only "lesion")
        lesion_type = str(detection["type"])
        evaluations = [hd.sr.QualitativeEvaluation(LESION_TYPE, lesion_type_code(lesion_type))]
        probability = float(detection["type_scores"][lesion_type])
        measurements.append(hd.sr.Measurement(name=LESION_TYPE_PROBABILITY, value=probability, unit=codes.UCUM.NoUnits))
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=label),
        referenced_region=hd.sr.ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
            graphic_data=_polyline(detection["box_px"]),
            source_image=source,
        ),
        finding_type=codes.SCT.Lesion,
        finding_category=codes.SCT.MorphologicallyAbnormalStructure,
        algorithm_id=algorithm,
        finding_sites=[hd.sr.FindingSite(getattr(codes.SCT, site))] if site else None,
        measurements=measurements,
        qualitative_evaluations=evaluations,
    )


def _no_finding_group(
    evidence: Sequence[Dataset], algorithm: hd.sr.AlgorithmIdentification
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    sources = [
        hd.sr.SourceImageForMeasurementGroup(
            referenced_sop_class_uid=item.SOPClassUID, referenced_sop_instance_uid=item.SOPInstanceUID
        )
        for item in evidence
    ]
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="no lesion detected"),
        finding_type=codes.SCT.Lesion,
        algorithm_id=algorithm,
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(codes.SCT.Lesion, codes.SCT.Absent)],
        source_images=sources,
    )


def build_sr(
    results: Sequence[dict[str, Any]],
    headers: Sequence[Dataset],
    *,
    model_name: str,
    model_version: str,
    min_score: float,
) -> KeptSR:
    """The SR for ``results`` over the files whose ``headers`` (data sets) they came from, encoded.

    SRError when the headers cannot make a valid SR (several patients, no study UID, or
    patient/study attributes too malformed to copy).
    """
    try:
        return _build(results, headers, model_name=model_name, model_version=model_version, min_score=min_score)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as error:
        raise SRError(
            "sr_unavailable",
            "A DICOM SR cannot be built from these files: a patient or study attribute it copies is malformed "
            f"({type(error).__name__}); ask for JSON instead.",
        ) from None


def _build(
    results: Sequence[dict[str, Any]],
    headers: Sequence[Dataset],
    *,
    model_name: str,
    model_version: str,
    min_score: float,
) -> KeptSR:
    evidence = [_evidence(header) for header in headers]
    _check_one_patient(evidence)
    by_uid = {str(item.SOPInstanceUID): item for item in evidence}
    algorithm = _algorithm(model_name, model_version, min_score)
    groups: list[Any] = []
    for result in results:
        source_evidence = by_uid[str(result["sop_instance_uid"])]
        for detection in result["detections"]:
            source = _source_image(source_evidence, int(result["frame"]))
            groups.append(_detection_group(len(groups) + 1, detection, source, algorithm))
    if not groups:
        groups.append(_no_finding_group(evidence, algorithm))
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(), name=model_name, manufacturer_name=MANUFACTURER, model_name=f"{model_name} {model_version}"
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.cid100.CTUnspecifiedBodyRegion,
        imaging_measurements=groups,
    )
    document = hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=report[0],
        series_instance_uid=generate_uid(),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description=SERIES_DESCRIPTION,
        content_qualification=hd.ContentQualificationValues.RESEARCH,
        coding_schemes=[CODING_SCHEME],
    )
    buffer = io.BytesIO()
    dcmwrite(buffer, document, enforce_file_format=True)
    return describe_sr(buffer.getvalue())
