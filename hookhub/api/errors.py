"""The one place where exceptions become HTTP responses.

Hookhub's own errors carry their status; framework and database errors are translated here;
anything else is logged with the request's route and answered with an opaque 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from hookhub.api.openapi import allowed_methods
from hookhub.api.responses import JSON, error_response
from hookhub.errors import (
    BadRequest,
    Conflict,
    HookhubError,
    InvalidJSON,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    ValidationFailed,
)

log = logging.getLogger("hookhub.api")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def _describe(errors: list[Any]) -> list[dict[str, Any]]:
    """Pydantic's errors without the offending input (it may be huge, or a secret)."""
    return [
        {
            "loc": [str(part) for part in err.get("loc", ())],
            "message": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in errors[:20]
    ]


def _summary(details: list[dict[str, Any]]) -> str:
    if not details:
        return "The request is invalid."
    first = details[0]
    where = ".".join(p for p in first["loc"] if p != "body") or "body"
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return f"{where}: {first['message']}{more}"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HookhubError)
    async def hookhub_error(_request: Request, exc: HookhubError) -> Response:
        if exc.status >= 500:
            log.error("request.failed", extra={"error_code": exc.code})
            if type(exc) is HookhubError:
                return error_response(HookhubError())
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        if any(err.get("type") == "json_invalid" for err in errors):
            return error_response(InvalidJSON())
        details = _describe(errors)
        if any(err["type"] == "missing" and err["loc"] == ["body"] for err in details):
            return error_response(BadRequest("A JSON body is required.", details=details))
        return error_response(ValidationFailed(_summary(details), details=details))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 400:
            error: HookhubError = InvalidJSON()
        elif exc.status_code == 404:
            error = NotFound("No such path.")
        elif exc.status_code == 413:
            error = PayloadTooLarge()
        else:
            headers = dict(exc.headers or {})
            if exc.status_code == 405:
                headers["Allow"] = ", ".join(allowed_methods(app, request.scope["path"]))
            code = _HTTP_CODES.get(exc.status_code, "error")
            return JSON(
                {"error": {"code": code, "message": str(exc.detail), "details": None}},
                status_code=exc.status_code,
                headers=headers,
            )
        return error_response(error)

    @app.exception_handler(IntegrityError)
    async def integrity_error(_request: Request, exc: IntegrityError) -> Response:
        # Constraints are checked by the services first; reaching here means a concurrent writer.
        log.info("request.integrity_conflict", extra={"error": type(exc.orig).__name__})
        return error_response(Conflict("The change conflicts with a concurrent change; retry."))

    @app.exception_handler(OperationalError)
    async def operational_error(_request: Request, exc: OperationalError) -> Response:
        log.warning("request.database_unavailable", extra={"error": type(exc.orig).__name__})
        return error_response(Unavailable())

    @app.exception_handler(DBAPIError)
    async def dbapi_error(request: Request, exc: DBAPIError) -> Response:
        log.error(
            "request.database_error",
            extra={"route": request.url.path, "error": type(exc.orig).__name__},
        )
        return error_response(HookhubError())

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error(
            "request.unexpected_error",
            exc_info=exc,
            extra={"method": request.method, "route": request.url.path},
        )
        return error_response(HookhubError())
