"""The JSON error envelope ``{"error": {"code", "message"}}`` and the handlers that produce it.

Every error the service answers uses this body, including FastAPI's own 404/405/422s. A stage's
own failure with a stable code (:class:`fsd.errors.FsdError`: an unusable upload, an SR that
cannot be built) is a 422 with its code; 503 answers are built by :mod:`.unavailable`. DICOM
rejections keep :class:`fsd.io.dicom.DicomError`'s stable code; the HTTP status says whose fault
it is (400 unreadable upload, 413 too large, 415 unsupported encoding, 422 readable but unusable).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fsd.errors import FsdError
from fsd.io.dicom.errors import NOT_DICOM, TOO_LARGE, UNSUPPORTED_TRANSFER_SYNTAX, DicomError
from service.common.tracebacks import code_locations

logger = logging.getLogger("fsd.service")


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable identifier, e.g. `not_ct` or `unauthorized`.")
    message: str = Field(description="A sentence for a person; never contains patient data.")


class ErrorBody(BaseModel):
    """Body of every error response."""

    error: ErrorDetail

    model_config = {
        "json_schema_extra": {
            "examples": [{"error": {"code": "not_ct", "message": "file 1 (slice.dcm): the DICOM object is MR, not CT."}}]
        }
    }


class ServiceError(Exception):
    """An error answered with ``status`` and the JSON envelope (plus optional headers)."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


_DICOM_STATUS: dict[str, int] = {
    NOT_DICOM: 400,
    TOO_LARGE: 413,
    UNSUPPORTED_TRANSFER_SYNTAX: 415,
}
_HTTP_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    503: "unavailable",
}


def dicom_status(code: str) -> int:
    """HTTP status of a DicomError code: 400, 413 or 415 as above, 422 for the rest."""
    return _DICOM_STATUS.get(code, 422)


def error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=message))
    return JSONResponse(body.model_dump(), status_code=status, headers=dict(headers or {}))


def _validation_message(error: RequestValidationError) -> str:
    parts = []
    for item in error.errors():
        location = ".".join(str(part) for part in item.get("loc", ()))
        parts.append(f"{location}: {item.get('msg', 'invalid value')}")
    return "invalid request: " + "; ".join(parts) if parts else "invalid request"


async def _service_error(request: Request, error: ServiceError) -> JSONResponse:
    return error_response(error.status, error.code, error.message, error.headers)


async def _dicom_error(request: Request, error: DicomError) -> JSONResponse:
    return error_response(dicom_status(error.code), error.code, error.message)


async def _fsd_error(request: Request, error: FsdError) -> JSONResponse:
    return error_response(422, error.code, error.message)


async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    status = error.status_code
    default = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "error"
    message = error.detail if isinstance(error.detail, str) and error.detail else default
    return error_response(status, _HTTP_CODES.get(status, "http_error"), message, getattr(error, "headers", None))


async def _request_validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    return error_response(422, "invalid_request", _validation_message(error))


class UnexpectedErrorMiddleware:
    """Last line of defence: any exception no handler took becomes a logged 500 in the envelope.

    Starlette's own fallback re-raises the exception so that uvicorn logs it with its message,
    which may quote data from an upload; here only the exception type and code locations are
    logged and nothing is re-raised.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as error:
            logger.error(
                "unhandled %s on %s %s; raised at:\n%s",
                type(error).__name__, scope.get("method"), scope.get("path"), code_locations(error),
            )
            if not started:
                response = error_response(
                    500, "internal_error", "The server failed to process the request; the failure was logged."
                )
                await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Route the expected exception types to the envelope (the most specific handler wins);
    add :class:`UnexpectedErrorMiddleware` for everything else."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(DicomError, _dicom_error)
    app.add_exception_handler(FsdError, _fsd_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)


def error_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """The ``responses=`` argument documenting error statuses (with the envelope) in OpenAPI."""
    descriptions = {
        400: "The upload is not DICOM or the multipart body is malformed.",
        401: "Missing or wrong API key.",
        406: "The Accept header asks for neither application/json nor application/dicom.",
        413: "The request, a file or its pixel data is over the configured limit.",
        415: "Wrong Content-Type, or a DICOM transfer syntax the server cannot decode.",
        422: "A readable upload that cannot be used (not CT, missing tags, bad geometry) or invalid parameters.",
        503: "Not ready yet, the queue is full, or the server is shutting down; see Retry-After.",
        504: "The request did not finish within the configured deadline.",
    }
    return {status: {"model": ErrorBody, "description": descriptions.get(status, HTTPStatus(status).phrase)} for status in statuses}
