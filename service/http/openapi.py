"""OpenAPI fragments shared by the detect routes (their bodies are parsed by hand, so FastAPI
cannot infer them)."""

from __future__ import annotations

from typing import Any

from service.http.errors import error_responses
from service.http.schemas import DetectResponse

DETECT_ERRORS = (400, 401, 406, 413, 415, 422, 503, 504)
STOW_ERRORS = (400, 401, 406, 413, 415, 422, 503, 504)
WADO_ERRORS = (400, 401, 404, 406)

_STORE_RESPONSE_EXAMPLE: dict[str, Any] = {
    "00081190": {"vr": "UR", "Value": ["http://fsd:8000/v1/studies/1.2.3"]},
    "00081199": {
        "vr": "SQ",
        "Value": [
            {
                "00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]},
                "00081155": {"vr": "UI", "Value": ["1.2.3.4.5"]},
            }
        ],
    },
}


def stow_responses() -> dict[int | str, dict[str, Any]]:
    """The store response (200/202/409) and the other answers of the STOW-RS routes."""
    store = {"application/dicom+json": {"schema": {"type": "object"}, "example": _STORE_RESPONSE_EXAMPLE}}
    return {
        200: {
            "description": "Every instance accepted for analysis (the SR follows in the background); the PS3.18 store "
            "response. With `Accept: application/json` the detection JSON, with `Accept: application/dicom` the SR "
            "(both synchronous).",
            "model": DetectResponse,
            "content": {**store, "application/dicom": {"schema": {"type": "string", "format": "binary"}}},
        },
        202: {"description": "Some instances refused: FailedSOPSequence gives each one's FailureReason.", "content": store},
        409: {"description": "No instance stored: FailedSOPSequence gives each one's FailureReason.", "content": store},
        **error_responses(*STOW_ERRORS),
    }


def detect_responses() -> dict[int | str, dict[str, Any]]:
    """200 as JSON (DetectResponse) or a DICOM SR, plus the documented errors."""
    return {
        200: {
            "model": DetectResponse,
            "description": "Detections per slice (JSON), or with `Accept: application/dicom` a DICOM SR (TID 1500).",
            "content": {"application/dicom": {"schema": {"type": "string", "format": "binary"}}},
        },
        **error_responses(*DETECT_ERRORS),
    }


FORM_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "DICOM files: one slice, a key slice with neighbours, or a series.",
                        }
                    },
                }
            }
        },
    }
}

STOW_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": 'STOW-RS: `Content-Type: multipart/related; type="application/dicom"; boundary=...`, '
        "one DICOM instance per part, each with `Content-Type: application/dicom`.",
        "content": {"multipart/related": {"schema": {"type": "string", "format": "binary"}}},
    }
}
