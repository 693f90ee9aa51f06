"""OpenAPI fragments shared by the detect routes (their bodies are parsed by hand, so FastAPI
cannot infer them)."""

from __future__ import annotations

from typing import Any

from service.errors import error_responses
from service.schemas import DetectResponse

DETECT_ERRORS = (400, 401, 406, 413, 415, 422, 503, 504)


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
