"""Dashboard pages of outbound endpoints: the list, creating and editing one (the event picker,
filter and transform with a preview), and an endpoint's page.

Every page calls :class:`hookhub.outbound.endpoints.EndpointService` or the preview module as the
API's ``/webhooks`` routes do; every change checks ``require_admin`` first. Secrets, deliveries
and the actions on them are ``outbound_deliveries.py``. What this module must never do: show a
signing secret or an auth credential (revealing one is a POST of its own, for admins).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hookhub import ids
from hookhub.api.schemas import MAX_ID
from hookhub.core import jsoncodec
from hookhub.core.catalog import EVENT_TYPES, WILDCARD
from hookhub.core.pagination import encode_cursor
from hookhub.core.urlguard import check_url
from hookhub.errors import HookhubError, NotFound, ValidationFailed
from hookhub.outbound.endpoints import validate_events, validate_headers
from hookhub.outbound.filters import matches, validate_filter
from hookhub.outbound.outbox import build_message
from hookhub.outbound.presets import PRESETS
from hookhub.outbound.preview import preview
from hookhub.outbound.transforms import validate_transform
from hookhub.records.outbound import Endpoint
from hookhub.store.dashboard_hooks import recent_delivery_statuses
from hookhub.web.auth import require_admin
from hookhub.web.pages.inbound_common import (
    PAGE,
    FormErrors,
    call,
    cursor_of,
    field_of,
    parse_json,
    pretty_json,
    read_form,
    services_of,
    show_time,
    text_field,
)
from hookhub.web.render import render

router = APIRouter(include_in_schema=False)

FIELDS = ("url", "description", "events", "filter", "transform", "headers")
TRANSFORM_KINDS = ("none", "preset", "template")


def endpoint_id_in_range(endpoint_id: int) -> int:
    if not 1 <= endpoint_id <= MAX_ID:
        raise NotFound(f"No webhook {endpoint_id}.")
    return endpoint_id


def event_groups() -> list[dict[str, Any]]:
    """The catalog's event types by family (``contact``, ``email``...), for the picker."""
    groups: dict[str, list[Any]] = {}
    for kind in EVENT_TYPES:
        groups.setdefault(kind.name.split(".", 1)[0], []).append(kind)
    return [
        {
            "family": family,
            # A family pattern never matches operational types: those are picked one by one.
            "pattern": f"{family}.*" if any(not k.operational for k in kinds) else None,
            "types": kinds,
        }
        for family, kinds in groups.items()
    ]


# -- the form: parsing it into what the service takes --------------------------------------------


def form_values(form: FormData) -> dict[str, Any]:
    """The form's fields as typed (re-rendered as they were on an error)."""
    return {
        "url": text_field(form, "url", limit=4096),
        "description": text_field(form, "description", limit=1000),
        "events": [e for e in form.getlist("events") if isinstance(e, str)][:200],
        "filter": text_field(form, "filter", limit=10_000),
        "transform_kind": text_field(form, "transform_kind") or "none",
        "transform_preset": text_field(form, "transform_preset"),
        "transform_template": text_field(form, "transform_template", limit=40_000),
        "headers": text_field(form, "headers", limit=100_000),
        "preview_event": text_field(form, "preview_event", limit=64),
    }


def form_spec(values: dict[str, Any], errors: FormErrors) -> dict[str, Any]:
    """What the service takes, from the form's values; unreadable parts go to ``errors``."""
    if not values["events"]:
        errors.add("events", "Pick at least one event type.")
    kind = values["transform_kind"]
    transform: dict[str, Any] | None = None
    if kind == "preset":
        transform = {"preset": values["transform_preset"]}
    elif kind == "template":
        transform = {"template": values["transform_template"]}
    elif kind != "none":
        errors.add("transform", "Choose none, a preset or a template.")
    headers = parse_json(values["headers"], "headers", errors, default=None)
    return {
        "url": values["url"],
        "description": values["description"],
        "events": values["events"],
        "filter": values["filter"] or None,
        "transform": transform,
        "headers": headers,
    }


def endpoint_values(endpoint: Endpoint) -> dict[str, Any]:
    """A saved endpoint as the form shows it."""
    transform = endpoint.transform or {}
    kind = "preset" if "preset" in transform else "template" if "template" in transform else "none"
    return {
        "url": endpoint.url,
        "description": endpoint.description,
        "events": list(endpoint.event_types),
        "filter": endpoint.filter or "",
        "transform_kind": kind,
        "transform_preset": transform.get("preset", ""),
        "transform_template": transform.get("template", ""),
        "headers": pretty_json(endpoint.headers) if endpoint.headers else "",
        "preview_event": "",
    }


def _form(
    request: Request,
    values: dict[str, Any],
    errors: FormErrors,
    *,
    endpoint: Endpoint | None = None,
    status: int = 200,
) -> Response:
    context = {
        "values": values,
        "errors": errors,
        "endpoint": endpoint,
        "groups": event_groups(),
        "wildcard": WILDCARD,
        "presets": list(PRESETS),
        "event_types": [k.name for k in EVENT_TYPES],
        "active": "outbound",
    }
    return render(request, "outbound_form.html", context, status=status)


def _check_url(request: Request, url: str, errors: FormErrors) -> None:
    """The URL's problem next to its field (the service says it too, but names no field)."""
    try:
        check_url(url, policy=services_of(request).endpoints.policy)
    except ValidationFailed as exc:
        errors.add("url", exc.message)


# -- the list and creating ----------------------------------------------------------------------


@router.get("/outbound")
async def outbound_list(request: Request) -> Response:
    services = services_of(request)
    items = await call(services.endpoints.page, after_id=cursor_of(request), limit=PAGE)

    def health() -> dict[int, Any]:
        with services.db.read() as conn:
            return recent_delivery_statuses(conn, [e.id for e in items])

    recent = await call(health)
    rows = []
    for endpoint in items:
        stats = recent[endpoint.id]
        failing = stats.share("failed", "exhausted")
        rows.append(
            {
                "endpoint": endpoint,
                "recent": stats,
                "failure_rate": None if failing is None else f"{failing:.0%}",
                "failing_since": show_time(endpoint.failing_since)
                if endpoint.failing_since
                else None,
            }
        )
    next_cursor = encode_cursor(items[-1].id) if len(items) == PAGE else None
    return render(
        request,
        "outbound_list.html",
        {"rows": rows, "next_cursor": next_cursor, "active": "outbound"},
    )


@router.get("/outbound/new")
async def outbound_new(request: Request) -> Response:
    values = {
        "url": "",
        "description": "",
        "events": [],
        "filter": "",
        "transform_kind": "none",
        "transform_preset": "",
        "transform_template": "",
        "headers": "",
        "preview_event": "",
    }
    return _form(request, values, FormErrors())


@router.post("/outbound")
async def outbound_create(request: Request) -> Response:
    require_admin(request)
    values = form_values(await read_form(request))
    errors = FormErrors()
    spec = form_spec(values, errors)
    _check_url(request, values["url"], errors)
    if errors:
        return _form(request, values, errors, status=422)
    try:
        endpoint = await call(services_of(request).endpoints.create, spec)
    except ValidationFailed as exc:
        errors.add(field_of(exc, FIELDS), exc.message)
        return _form(request, values, errors, status=422)
    return RedirectResponse(f"/outbound/{endpoint.id}?created=1", status_code=303)


@router.post("/outbound/preview")
async def outbound_preview_draft(request: Request) -> Response:
    """The create form's preview: what a draft endpoint would be sent for an event's example."""
    values = form_values(await read_form(request))
    return render(
        request, "_outbound_preview.html", {"preview": await _draft_preview(request, values, None)}
    )


async def _draft_preview(
    request: Request, values: dict[str, Any], saved: Endpoint | None
) -> dict[str, Any]:
    """Whether the example passes the draft's filter, and the body and headers it would get."""
    errors = FormErrors()
    spec = form_spec(values, errors)
    errors.pop("events", None)  # a preview needs no subscription yet
    event_type = values["preview_event"] or (
        next((e for e in values["events"] if "*" not in e), None) or "contact.created"
    )
    if errors:
        return {"problem": next(iter(errors.values())), "event_type": event_type}
    now = datetime.now(UTC)
    try:
        filter_ = validate_filter(spec["filter"])
        transform = validate_transform(spec["transform"], batched=bool(saved and saved.batched))
        headers = validate_headers(spec["headers"]) if spec["headers"] is not None else {}
        if saved is None:
            draft = Endpoint(
                id=0,
                url=spec["url"],
                description="",
                event_types=validate_events(spec["events"] or [event_type]),
                headers=headers,
                auth=None,
                secret=ids.webhook_secret(),
                previous_secrets=[],
                batched=False,
                enabled=True,
                disabled_reason=None,
                rate_limit=None,
                max_concurrency=None,
                failing_since=None,
                created_at=now,
                updated_at=now,
            )
        else:
            draft = dataclasses.replace(saved, headers=headers)
        draft.filter, draft.transform = filter_, transform
        message = build_message(event_type, _example(event_type), now)
        passes = filter_ is None or matches(
            filter_, jsoncodec.loads(message.payload), webhook_id=draft.id, message_id=message.id
        )
        shown = await call(
            preview, services_of(request).db, draft, event_type=event_type, message_id=None
        )
    except (HookhubError, ValueError) as exc:
        return {"problem": getattr(exc, "message", str(exc)), "event_type": event_type}
    return {
        "event_type": event_type,
        "subscribed": draft.subscribes_to(event_type),
        "passes": passes,
        "body": pretty_json(shown["body"]),
        "headers": shown["headers"],
    }


def _example(event_type: str) -> dict[str, Any]:
    for kind in EVENT_TYPES:
        if kind.name == event_type:
            return dict(kind.example)
    raise ValidationFailed(f"Unknown event type {event_type!r}.")


# -- one endpoint -------------------------------------------------------------------------------


@router.get("/outbound/{endpoint_id:int}/edit")
async def outbound_edit(request: Request, endpoint_id: int) -> Response:
    endpoint = await call(services_of(request).endpoints.get, endpoint_id_in_range(endpoint_id))
    return _form(request, endpoint_values(endpoint), FormErrors(), endpoint=endpoint)


@router.post("/outbound/{endpoint_id:int}/edit")
async def outbound_update(request: Request, endpoint_id: int) -> Response:
    require_admin(request)
    services = services_of(request)
    endpoint = await call(services.endpoints.get, endpoint_id_in_range(endpoint_id))
    values = form_values(await read_form(request))
    errors = FormErrors()
    spec = form_spec(values, errors)
    _check_url(request, values["url"], errors)
    if not errors:
        try:
            await call(services.endpoints.update, endpoint_id, spec)
        except ValidationFailed as exc:
            errors.add(field_of(exc, FIELDS), exc.message)
    if errors:
        return _form(request, values, errors, endpoint=endpoint, status=422)
    return RedirectResponse(f"/outbound/{endpoint_id}?saved=1", status_code=303)


@router.post("/outbound/{endpoint_id:int}/preview")
async def outbound_preview(request: Request, endpoint_id: int) -> Response:
    """An endpoint's preview: with the edit form's draft, or (no draft fields) as saved."""
    services = services_of(request)
    endpoint = await call(services.endpoints.get, endpoint_id_in_range(endpoint_id))
    form = await read_form(request)
    if "transform_kind" in form:
        shown = await _draft_preview(request, form_values(form), endpoint)
    else:
        event_type = text_field(form, "preview_event", limit=64) or "contact.created"
        values = {**endpoint_values(endpoint), "preview_event": event_type}
        shown = await _draft_preview(request, values, endpoint)
    return render(request, "_outbound_preview.html", {"preview": shown})


@router.post("/outbound/{endpoint_id:int}/delete")
async def outbound_delete(request: Request, endpoint_id: int) -> Response:
    require_admin(request)
    await call(services_of(request).endpoints.delete, endpoint_id_in_range(endpoint_id))
    return RedirectResponse("/outbound", status_code=303)
