"""WADO-RS for the service's own SRs: a DICOMweb client without a PACS reads its results back.

``GET /v1/studies/{study}[/series/{series}[/instances/{sop}]]`` answers the kept SRs as
``multipart/related; type="application/dicom"``, and ``.../metadata`` their DICOM JSON. Only
SRs the service made are kept (:mod:`service.delivery.sr_store`, bounded in time and memory); uploaded
images never are, so asking for one is a 404 that says so.
"""

from __future__ import annotations

import io
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse
from pydicom import dcmread
from pydicom.uid import ImplicitVRLittleEndian

from service.common.multipart import encode_related
from service.delivery.sr_store import KeptSR, SRStore
from service.http.auth import Authenticated
from service.http.dependencies import KeptSRs, Settings
from service.http.errors import ServiceError, error_responses
from service.http.negotiation import DICOM, wado_transfer_syntax, wants_metadata_json
from service.http.openapi import WADO_ERRORS
from service.http.routes.studies import StudyUID, check_uid

router = APIRouter(prefix="/v1", tags=["DICOMweb"])
SeriesUID = Annotated[str, Path(description="SeriesInstanceUID (0020,000E)", max_length=64)]
InstanceUID = Annotated[str, Path(description="SOPInstanceUID (0008,0018)", max_length=64)]
_INSTANCES = {200: {"content": {"multipart/related": {"schema": {"type": "string", "format": "binary"}}}}, **error_responses(*WADO_ERRORS)}
_METADATA = {200: {"content": {"application/dicom+json": {"schema": {"type": "array"}}}}, **error_responses(*WADO_ERRORS)}


def _kept(
    store: SRStore, keep_s: float, study: str, series: str | None = None, sop: str | None = None
) -> list[KeptSR]:
    check_uid(study, "StudyInstanceUID")
    for value, name in ((series, "SeriesInstanceUID"), (sop, "SOPInstanceUID")):
        if value is not None:
            check_uid(value, name)
    found = store.find(study, series, sop)
    if not found:
        raise ServiceError(
            404,
            "not_found",
            "No SR of the service is kept for this resource. Uploaded images are never kept; the service keeps its "
            f"own SRs for {keep_s:g} s (setting sr_keep_s).",
        )
    return found


def _encoded(item: KeptSR, syntax: str | None) -> bytes:
    if syntax is None or syntax == item.transfer_syntax_uid:
        return item.data
    dataset = dcmread(io.BytesIO(item.data))
    dataset.file_meta.TransferSyntaxUID = syntax
    buffer = io.BytesIO()
    dataset.save_as(buffer, implicit_vr=syntax == ImplicitVRLittleEndian, little_endian=True, enforce_file_format=True)
    return buffer.getvalue()


def _instances(request: Request, found: list[KeptSR]) -> Response:
    syntax = wado_transfer_syntax(request.headers.get("accept"))
    body, content_type = encode_related([_encoded(item, syntax) for item in found], DICOM)
    served = syntax or found[0].transfer_syntax_uid
    if all((syntax or item.transfer_syntax_uid) == served for item in found):
        content_type += f"; transfer-syntax={served}"
    return Response(body, media_type=content_type)


def _metadata(request: Request, found: list[KeptSR]) -> Response:
    media_type = wants_metadata_json(request.headers.get("accept"))
    return JSONResponse([item.metadata for item in found], media_type=media_type)


@router.get("/studies/{study}", summary="Retrieve the study's SRs (WADO-RS)", responses=_INSTANCES)
async def retrieve_study(request: Request, study: StudyUID, _: Authenticated, store: KeptSRs, settings: Settings) -> Response:
    return _instances(request, _kept(store, settings.sr_keep_s, study))


@router.get("/studies/{study}/metadata", summary="Metadata of the study's SRs (WADO-RS)", responses=_METADATA)
async def study_metadata(request: Request, study: StudyUID, _: Authenticated, store: KeptSRs, settings: Settings) -> Response:
    return _metadata(request, _kept(store, settings.sr_keep_s, study))


@router.get("/studies/{study}/series/{series}", summary="Retrieve an SR series (WADO-RS)", responses=_INSTANCES)
async def retrieve_series(request: Request, study: StudyUID, series: SeriesUID, _: Authenticated, store: KeptSRs, settings: Settings) -> Response:
    return _instances(request, _kept(store, settings.sr_keep_s, study, series))


@router.get("/studies/{study}/series/{series}/metadata", summary="Metadata of an SR series (WADO-RS)", responses=_METADATA)
async def series_metadata(request: Request, study: StudyUID, series: SeriesUID, _: Authenticated, store: KeptSRs, settings: Settings) -> Response:
    return _metadata(request, _kept(store, settings.sr_keep_s, study, series))


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}", summary="Retrieve one SR (WADO-RS)", responses=_INSTANCES
)
async def retrieve_instance(
    request: Request, study: StudyUID, series: SeriesUID, sop: InstanceUID, _: Authenticated, store: KeptSRs, settings: Settings
) -> Response:
    return _instances(request, _kept(store, settings.sr_keep_s, study, series, sop))


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/metadata", summary="Metadata of one SR (WADO-RS)", responses=_METADATA
)
async def instance_metadata(
    request: Request, study: StudyUID, series: SeriesUID, sop: InstanceUID, _: Authenticated, store: KeptSRs, settings: Settings
) -> Response:
    return _metadata(request, _kept(store, settings.sr_keep_s, study, series, sop))
