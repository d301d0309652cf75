"""Health and readiness (unauthenticated, for load balancers) and metrics (a key or token)."""

from __future__ import annotations

import hmac
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Request
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from starlette.responses import PlainTextResponse, Response

from hookhub import __version__
from hookhub.api.deps import ServicesDep
from hookhub.api.readiness import Readiness
from hookhub.api.responses import JSON
from hookhub.api.schemas import ErrorOut

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> Response:
    return JSON({"status": "ok", "version": __version__})


class DatabaseReadiness(BaseModel):
    backend: Literal["sqlite", "postgresql"]
    reachable: bool
    writable: bool
    error: str | None


class LoopReadiness(BaseModel):
    state: Literal["running", "failing", "restarting", "stalled", "stopped"]
    restarts: int
    last_error: str | None
    last_progress: str | None
    """When the loop last reported progress (ISO 8601, UTC); null if it reports none."""


class ReadinessOut(BaseModel):
    status: Literal["ready", "unavailable"]
    database: DatabaseReadiness
    loops: dict[str, LoopReadiness]


@router.get(
    "/readyz",
    response_model=ReadinessOut,
    responses={503: {"model": ReadinessOut, "description": "Not ready: the body says why"}},
)
async def readyz(request: Request, services: ServicesDep) -> Response:
    """200 when the database answers and takes writes and every background loop runs."""
    readiness: Readiness | None = getattr(request.app.state, "readiness", None)
    if readiness is None:
        readiness = Readiness(services.db, services.settings.readiness_timeout)
        request.app.state.readiness = readiness
    ready, body = await readiness.report()
    return JSON(body, status_code=200 if ready else 503)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    openapi_extra={"x-hookhub-scope": "read"},  # any key, or the metrics token
    responses={
        200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}},
        401: {"model": ErrorOut, "description": "Missing or invalid API key or metrics token"},
    },
)
def metrics(
    services: ServicesDep, authorization: Annotated[str | None, Header()] = None
) -> Response:
    """Prometheus metrics: any API key, or ``Bearer <HOOKHUB_METRICS_TOKEN>``."""
    token = services.settings.metrics_token
    if token is None or not _is_token(authorization, token.get_secret_value()):
        services.keys.check(authorization)  # any scope
    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def _is_token(authorization: str | None, token: str) -> bool:
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )
