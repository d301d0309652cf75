"""Which API key scope each route needs, in one table, and its mark in the OpenAPI document.

By default a GET needs ``read`` and anything else ``write``; the routes below need ``admin``
because their answer reveals a secret (or replaces one and answers it). Each operation carries
its scope as ``x-hookhub-scope`` and documents the 403 a weaker key gets.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter
from fastapi.routing import APIRoute

from hookhub.api.schemas import ErrorOut
from hookhub.keys import Scope

SCOPE_EXTENSION = "x-hookhub-scope"

# Paths below the API prefix (/api/v1).
ADMIN_ROUTES = frozenset(
    {
        ("GET", "/webhooks/{webhook_id}/secret"),
        ("POST", "/webhooks/{webhook_id}/rotate-secret"),
    }
)


def route_scope(method: str, path: str) -> Scope:
    if (method, path) in ADMIN_ROUTES:
        return Scope.ADMIN
    return Scope.READ if method in ("GET", "HEAD") else Scope.WRITE


def mark_scopes(routers: Iterable[APIRouter]) -> None:
    """Record each API route's scope on the route (read by the key check) and in OpenAPI."""
    for route in (route for router in routers for route in router.routes):
        if not isinstance(route, APIRoute):
            continue
        scopes = {route_scope(method, route.path) for method in route.methods or ()}
        scope = max(scopes, key=list(Scope).index)
        route.openapi_extra = {**(route.openapi_extra or {}), SCOPE_EXTENSION: scope.value}
        route.responses.setdefault(
            403,
            {"model": ErrorOut, "description": f"The API key's scope is below {scope.value}"},
        )


def scope_of(route: object) -> Scope:
    """The scope ``mark_scopes`` gave a route; admin for anything unmarked (fail closed)."""
    extra = getattr(route, "openapi_extra", None) or {}
    return Scope(extra.get(SCOPE_EXTENSION, Scope.ADMIN.value))
