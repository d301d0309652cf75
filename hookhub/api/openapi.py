"""The OpenAPI document, told truthfully: every status and content type the API really answers.

FastAPI documents what a route declares; the statuses that come from elsewhere (the API-key
check, the error handlers, the body limit, the database being away) are added here, once, from
what each operation takes: a body, a cursor, path parameters. ``tests/contract`` runs
schemathesis against the live document to keep it honest. This module must never change what
the API answers, only what the document says about it.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

_ERROR = {"$ref": "#/components/schemas/ErrorOut"}
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


def _takes_body(operation: dict[str, Any]) -> bool:
    return "requestBody" in operation


def _parameters(operation: dict[str, Any], where: str) -> list[str]:
    return [p["name"] for p in operation.get("parameters", []) if p.get("in") == where]


def _api_responses(operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The statuses any authenticated operation can answer, beside its own."""
    extra = {
        "401": _error("Missing or invalid API key"),
        "403": _error("The API key's scope does not allow this operation"),
        "503": _error("The database is unavailable; retry later"),
    }
    if _takes_body(operation):
        extra["400"] = _error("The body is not valid JSON, or is missing")
        extra["413"] = _error("The body is larger than the server accepts")
        extra["422"] = _error("The body is well-formed but invalid")
    if "cursor" in _parameters(operation, "query"):
        extra["400"] = _error("The cursor is not one this API returned, or the body is invalid")
    if _parameters(operation, "query") or _parameters(operation, "path"):
        extra["422"] = _error("A parameter is invalid")
    if _parameters(operation, "path"):
        extra["404"] = _error("Not found")
    if operation.get("_method") in {"post", "patch", "put", "delete"}:
        extra["409"] = _error("The change conflicts with the current state")
    return extra


def document(app: FastAPI, api_prefix: str) -> dict[str, Any]:
    """The OpenAPI document of ``app``, with the statuses every operation really answers."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    for path, item in schema.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            if path.startswith(api_prefix):
                operation["_method"] = method
                for status, response in _api_responses(operation).items():
                    responses.setdefault(status, response)
                del operation["_method"]
            # FastAPI documents its own validation error shape; ours is the one ErrorOut.
            if "422" in responses:
                responses["422"] = _error(responses["422"].get("description", "Invalid request"))
    schemas = schema.get("components", {}).get("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    return schema


def install(app: FastAPI, api_prefix: str) -> None:
    """Serve :func:`document` as ``/openapi.json`` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app, api_prefix)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Every method the document lists for the request's path (what a 405's ``Allow`` names).

    Starlette answers a 405 with the methods of the first route whose path matched; FastAPI
    makes one route per method, so that header would name one method of several. The document
    is where all of them are listed, so the answer is read from it.
    """
    table: list[tuple[re.Pattern[str], list[str]]] | None = getattr(app.state, "allow_table", None)
    if table is None:
        table = []
        for template, item in app.openapi().get("paths", {}).items():
            pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
            methods = sorted(m.upper() for m in item if m in _METHODS)
            table.append((re.compile(pattern + r"\Z"), methods))
        app.state.allow_table = table
    allowed: set[str] = set()
    for compiled, methods in table:
        if compiled.match(path):
            allowed.update(methods)
    return sorted(allowed)
