"""Health, readiness and metrics: unauthenticated, for load balancers and Prometheus."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from hookhub import __version__
from hookhub.api.deps import ServicesDep
from hookhub.api.responses import JSON
from hookhub.errors import Unavailable

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> Response:
    return JSON({"status": "ok", "version": __version__})


@router.get("/readyz")
def readyz(services: ServicesDep) -> Response:
    try:
        services.db.ping()
    except Exception as exc:
        raise Unavailable("The database is not reachable.") from exc
    return JSON({"status": "ready", "database": services.db.backend})


@router.get("/metrics")
def metrics(services: ServicesDep) -> Response:
    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)
