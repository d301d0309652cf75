"""Builds the ASGI application: REST API, operational endpoints, and (later) receiver and UI."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from fastapi import APIRouter, Depends, FastAPI

from hookhub import __version__
from hookhub.api.deps import require_api_key
from hookhub.api.errors import install_error_handlers
from hookhub.api.middleware import BodyLimitMiddleware, MetricsMiddleware
from hookhub.api.responses import JSON
from hookhub.api.routes import attributes, contacts, events, lists, messages, ops, webhooks
from hookhub.api.schemas import ErrorOut
from hookhub.services import Services, build_worker

API_PREFIX = "/api/v1"


def create_app(services: Services, *, run_workers: bool = False) -> FastAPI:
    """The whole HTTP app; with ``run_workers`` its lifespan also runs the delivery workers."""
    app = FastAPI(
        title="Hookhub",
        version=__version__,
        description="Contacts platform built around inbound and outbound webhooks.",
        default_response_class=JSON,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=_lifespan(services) if run_workers else None,
    )
    app.state.services = services
    install_error_handlers(app)

    api = APIRouter(
        prefix=API_PREFIX,
        dependencies=[Depends(require_api_key)],
        responses={
            401: {"model": ErrorOut, "description": "Missing or invalid API key"},
            404: {"model": ErrorOut, "description": "Not found"},
            409: {"model": ErrorOut, "description": "Conflict"},
            422: {"model": ErrorOut, "description": "Invalid request"},
        },
    )
    for module in (contacts, lists, events, attributes, messages, webhooks):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(ops.router)

    app.add_middleware(BodyLimitMiddleware, max_bytes=services.settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=services.metrics)
    return app


def _lifespan(
    services: Services,
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """Runs a delivery worker beside the HTTP server (``hookhub serve``)."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        worker = build_worker(services)
        task = asyncio.create_task(worker.run(), name="hookhub-delivery-worker")
        try:
            yield
        finally:
            worker.stop()
            await task
            await worker.transport.close()

    return lifespan
