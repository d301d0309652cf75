"""Builds the ASGI application: the inbound receiver, the REST API and operational endpoints.

``POST /in/{token}`` goes straight to the bare-ASGI receiver (providers time out, so it skips
the framework); everything else is the FastAPI app. With ``run_workers`` (``hookhub serve``)
the app's lifespan also runs a delivery worker and the inbound rules processor, under a
:class:`~hookhub.supervisor.Supervisor` that restarts them and reports them on ``/readyz``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from fastapi import APIRouter, Depends, FastAPI
from starlette.types import Receive, Scope, Send

from hookhub import __version__
from hookhub.api import openapi
from hookhub.api.contact_create import PATH as CREATE_PATH
from hookhub.api.contact_create import ContactCreateEndpoint
from hookhub.api.deps import require_api_key
from hookhub.api.errors import install_error_handlers
from hookhub.api.middleware import BodyLimitMiddleware, MetricsMiddleware
from hookhub.api.readiness import Readiness
from hookhub.api.responses import JSON
from hookhub.api.routes import (
    attributes,
    automations,
    campaigns,
    contacts,
    email_templates,
    emails,
    events,
    inbound,
    lists,
    messages,
    ops,
    webhooks,
)
from hookhub.api.schemas import ErrorOut
from hookhub.api.scopes import mark_scopes
from hookhub.email.campaign_loop import CampaignLoop
from hookhub.email.tracking_processor import TrackingProcessor
from hookhub.email.tracking_receiver import PREFIX as TRACKING_PREFIX
from hookhub.email.tracking_receiver import TrackingReceiver
from hookhub.inbound.processor import InboundProcessor
from hookhub.inbound.receiver import PREFIX, InboundReceiver
from hookhub.services import (
    Services,
    build_automation_loop,
    build_date_trigger_loop,
    build_email_worker,
    build_retention_loop,
    build_tracking_processor,
    build_tracking_signer,
    build_worker,
)
from hookhub.store.config_versions import ConfigKind
from hookhub.supervisor import Supervisor
from hookhub.web.app import install_dashboard

API_PREFIX = "/api/v1"


class HookhubApp:
    """The ASGI entry point: routes the receive path and the tracking routes around the
    framework."""

    def __init__(
        self,
        api: FastAPI,
        receiver: InboundReceiver,
        tracking: TrackingReceiver | None = None,
        contact_create: ContactCreateEndpoint | None = None,
    ) -> None:
        self.api = api
        self.receiver = receiver
        self.tracking = tracking
        self.contact_create = contact_create
        self.state = api.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PREFIX):
            await self.receiver(scope, receive, send)
        elif (
            scope["type"] == "http"
            and self.tracking is not None
            and scope["path"].startswith(TRACKING_PREFIX)
        ):
            await self.tracking(scope, receive, send)
        elif (
            self.contact_create is not None
            and scope["type"] == "http"
            and scope["path"] == CREATE_PATH
            and scope["method"] == "POST"
        ):
            await self.contact_create(scope, receive, send)
        else:
            await self.api(scope, receive, send)


def create_app(services: Services, *, run_workers: bool = False) -> HookhubApp:
    settings = services.settings
    processor = (
        InboundProcessor(services.inbound, poll_interval=settings.poll_interval)
        if run_workers
        else None
    )
    supervisor = Supervisor(stall_after=settings.loop_stall_after) if run_workers else None
    receiver = InboundReceiver(
        services.inbound,
        max_body=settings.max_body_bytes,
        default_rate_limit=settings.inbound_rate_limit or None,
        body_timeout=settings.receive_body_timeout,
        rejected_body_prefix=settings.rejected_body_prefix,
        refusals_logged_per_minute=settings.refusals_logged_per_minute,
        metrics=services.metrics,
        on_received=processor.wake if processor else lambda: None,
    )
    services.config_watch.on_change(ConfigKind.INBOUND_WEBHOOKS, receiver.forget_all)
    tracker = build_tracking_processor(services) if run_workers else None
    tracking = TrackingReceiver(
        services.db,
        build_tracking_signer(services),
        on_received=tracker.wake if tracker else lambda: None,
    )
    if tracker is not None:
        tracker.receiving = tracking.journal.busy
    app = FastAPI(
        title="Hookhub",
        version=__version__,
        description="Contacts platform built around inbound and outbound webhooks.",
        default_response_class=JSON,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=_lifespan(services, processor, supervisor, tracker) if processor else None,
    )
    app.state.services = services
    app.state.readiness = Readiness(services.db, settings.readiness_timeout, supervisor)
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
    routers = [m.router for m in (contacts, lists, events, attributes, messages, webhooks, inbound)]
    routers.append(campaigns.router)
    routers.append(email_templates.router)
    routers.append(emails.router)
    routers.append(automations.router)
    mark_scopes(routers)
    for router in routers:
        api.include_router(router)
    app.include_router(api)
    app.include_router(ops.router)
    openapi.install(app, API_PREFIX)
    install_dashboard(app, services)

    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=services.metrics)
    contact_create = ContactCreateEndpoint(
        app,
        crm=services.crm,
        keys=services.keys,
        metrics=services.metrics,
        max_body=settings.max_body_bytes,
    )
    return HookhubApp(app, receiver, tracking, contact_create)


def _lifespan(
    services: Services,
    processor: InboundProcessor,
    supervisor: Supervisor | None,
    tracker: TrackingProcessor | None = None,
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """Runs a delivery worker, the inbound processor and retention beside the HTTP server."""
    assert supervisor is not None

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        worker = build_worker(services)
        supervisor.add("delivery", worker)
        supervisor.add("inbound", processor)
        supervisor.add("retention", build_retention_loop(services))
        supervisor.add("campaigns", CampaignLoop(services.db, services.settings))
        if tracker is not None:
            supervisor.add("tracking", tracker)
        email_worker = build_email_worker(services)
        supervisor.add("email", email_worker)
        supervisor.add("automation-dates", build_date_trigger_loop(services))
        supervisor.add("automations", build_automation_loop(services))
        supervisor.start()
        try:
            yield
        finally:
            supervisor.stop()
            await supervisor.wait()
            supervisor.clear()
            await worker.transport.close()
            await email_worker.transport.aclose()

    return lifespan
