"""Dashboard pages of inbound webhooks: the list, creating one from a source, its request log,
one request (headers, body, outcome) and replaying it. The rule editor is ``inbound_rules.py``.

Every page calls :class:`hookhub.inbound.service.InboundService`, as the API's routes do; every
change checks ``require_admin`` first. What this module must never do: show a webhook's secret
after the answer to its creation, or write SQL (reads the API lacks are in
``hookhub.store.dashboard_hooks``).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hookhub.api.schemas import MAX_ID
from hookhub.core.pagination import encode_cursor
from hookhub.errors import Conflict, NotFound, ValidationFailed
from hookhub.inbound.presets import preset_rules
from hookhub.inbound.providers import PROVIDERS
from hookhub.inbound.service import InboundWebhook, request_summary_to_api
from hookhub.store.dashboard_hooks import recent_request_statuses, request_page
from hookhub.web.auth import require_admin
from hookhub.web.pages.inbound_common import (
    PAGE,
    FormErrors,
    call,
    cursor_of,
    field_of,
    optional_choice,
    parse_json,
    parse_local_time,
    pretty_body,
    pretty_json,
    query_string,
    read_form,
    services_of,
    show_time,
    text_field,
)
from hookhub.web.render import render

router = APIRouter(include_in_schema=False)

STATUSES = ("received", "processed", "failed", "rejected", "duplicate")
SOURCES: dict[str, str] = {
    "stripe": "Stripe-Signature: HMAC-SHA256 of the timestamp and body with the endpoint's"
    " signing secret (whsec_...), within 5 minutes; dedupes on the event id.",
    "shopify": "X-Shopify-Hmac-Sha256: HMAC-SHA256 of the body with the app's secret; dedupes"
    " on X-Shopify-Event-Id.",
    "calendly": "Calendly-Webhook-Signature: HMAC-SHA256 of the timestamp and body with the"
    " signing key, within 3 minutes.",
    "typeform": "Typeform-Signature: HMAC-SHA256 (base64) of the body; dedupes on event_id.",
    "github": "X-Hub-Signature-256: HMAC-SHA256 of the body; dedupes on X-GitHub-Delivery.",
    "standard": "Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature), any"
    " sender using the standardwebhooks or svix libraries; a whsec_ secret is generated.",
    "generic": "Any app: HMAC of the body in a header you choose, a bearer token, basic auth,"
    ' or nothing (options {"auth": "none"}).',
    "mailgun": "Mailgun's signature in the body (timestamp + token) with the HTTP webhook"
    " signing key, within 5 minutes.",
    "postmark": "Basic auth in the URL (Postmark signs nothing); credentials are generated.",
    "sendgrid": "SendGrid's Signed Event Webhook: ECDSA P-256 with the verification key.",
}
CREATE_FIELDS = ("name", "source", "secret", "options", "rate_limit")
SETTINGS_FIELDS = ("name", "secret", "rate_limit", "enabled")


def webhook_id_in_range(webhook_id: int) -> int:
    if not 1 <= webhook_id <= MAX_ID:
        raise NotFound(f"No inbound webhook {webhook_id}.")
    return webhook_id


def _sources() -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "verifies": SOURCES.get(name, ""),
            "presets": [
                rule.get("name") or f"rule {i + 1}" for i, rule in enumerate(preset_rules(name))
            ],
        }
        for name in PROVIDERS
    ]


def _url(request: Request, webhook: InboundWebhook) -> str:
    return str(webhook.to_api(services_of(request).settings.base_url)["url"])


# -- the list and creating ----------------------------------------------------------------------


@router.get("/inbound")
async def inbound_list(request: Request) -> Response:
    services = services_of(request)
    items = await call(services.inbound.page, after_id=cursor_of(request), limit=PAGE)

    def health() -> dict[int, Any]:
        with services.db.read() as conn:
            return recent_request_statuses(conn, [w.id for w in items])

    recent = await call(health)
    rows = [
        {
            "webhook": w,
            "url": _url(request, w),
            "recent": recent[w.id],
            "last_at": show_time(recent[w.id].last_at),
        }
        for w in items
    ]
    next_cursor = encode_cursor(items[-1].id) if len(items) == PAGE else None
    return render(
        request,
        "inbound_list.html",
        {"rows": rows, "next_cursor": next_cursor, "active": "inbound"},
    )


def _new_form(
    request: Request, values: dict[str, str], errors: FormErrors, status: int = 200
) -> Response:
    return render(
        request,
        "inbound_new.html",
        {"sources": _sources(), "values": values, "errors": errors, "active": "inbound"},
        status=status,
    )


@router.get("/inbound/new")
async def inbound_new(request: Request) -> Response:
    source = request.query_params.get("source") or "stripe"
    return _new_form(request, {"source": source if source in PROVIDERS else "stripe"}, FormErrors())


@router.post("/inbound")
async def inbound_create(request: Request) -> Response:
    require_admin(request)
    form = await read_form(request)
    values = {name: text_field(form, name) for name in CREATE_FIELDS}
    errors = FormErrors()
    if values["source"] not in PROVIDERS:
        errors.add("source", "Choose one of the sources listed.")
    options = parse_json(values["options"], "options", errors, default=None)
    if options is not None and not isinstance(options, dict):
        errors.add("options", 'Options are a JSON object, such as {"tolerance": 600}.')
    rate_limit = _rate_limit(values["rate_limit"], errors)
    if errors:
        return _new_form(request, values, errors, status=422)
    spec: dict[str, Any] = {
        "name": values["name"],
        "source": values["source"],
        "secret": values["secret"] or None,
        "options": options,
        "rate_limit": rate_limit,
    }
    try:
        webhook, secret = await call(services_of(request).inbound.create, spec)
    except ValidationFailed as exc:
        errors.add(field_of(exc, CREATE_FIELDS), exc.message)
        return _new_form(request, values, errors, status=422)
    return render(
        request,
        "inbound_created.html",
        {"webhook": webhook, "url": _url(request, webhook), "secret": secret, "active": "inbound"},
        status=201,
    )


def _rate_limit(text: str, errors: FormErrors) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.001 <= value <= 1_000_000:
        errors.add("rate_limit", "A number of requests per second, from 0.001 to 1000000.")
        return None
    return value


# -- one webhook and its request log ------------------------------------------------------------


async def _log(request: Request, webhook_id: int) -> dict[str, Any]:
    """The request log's page under the query's filters (status, since, until, cursor)."""
    query = request.query_params
    errors = FormErrors()
    status = optional_choice(query.get("status"), STATUSES, "status")
    since = parse_local_time(query.get("since") or "", "since", errors)
    until = parse_local_time(query.get("until") or "", "until", errors)
    before_id = cursor_of(request)
    services = services_of(request)

    def read() -> list[dict[str, Any]]:
        with services.db.read() as conn:
            rows = request_page(
                conn,
                webhook_id,
                status=status,
                since=since.timestamp() if since else None,
                until=until.timestamp() if until else None,
                before_id=before_id,
                limit=PAGE,
            )
        return [request_summary_to_api(r, r.body_size) for r in rows]

    items = [] if errors else await call(read)
    for item in items:
        item["received"] = show_time(item["received_at"])
    filters = {
        "status": status or "",
        "since": query.get("since") or "",
        "until": query.get("until") or "",
    }
    next_cursor = encode_cursor(items[-1]["id"]) if len(items) == PAGE else None
    return {
        "requests": items,
        "filters": filters,
        "filter_errors": errors,
        "statuses": STATUSES,
        "next_query": query_string({**filters, "cursor": next_cursor}) if next_cursor else None,
        "live": before_id is None,
        "live_query": query_string(filters),
    }


async def _detail(
    request: Request,
    webhook_id: int,
    *,
    errors: FormErrors | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    services = services_of(request)
    webhook = await call(services.inbound.get, webhook_id_in_range(webhook_id))
    unlogged = await call(services.inbound.unlogged, webhook_id, time.time() - 24 * 3600)
    log = await _log(request, webhook_id)
    context = {
        "webhook": webhook,
        "url": _url(request, webhook),
        "verifies": SOURCES.get(webhook.source, ""),
        "unlogged": unlogged,
        "values": values
        or {
            "name": webhook.name,
            "rate_limit": "" if webhook.rate_limit is None else f"{webhook.rate_limit:g}",
        },
        "errors": errors or FormErrors(),
        "saved": request.query_params.get("saved") == "1",
        "created_at": show_time(webhook.created_at),
        "active": "inbound",
        **log,
    }
    if log["filter_errors"]:
        status = 422
    return render(request, "inbound_detail.html", context, status=status)


@router.get("/inbound/{webhook_id:int}")
async def inbound_detail(request: Request, webhook_id: int) -> Response:
    return await _detail(request, webhook_id)


@router.get("/inbound/{webhook_id:int}/requests")
async def inbound_requests_partial(request: Request, webhook_id: int) -> Response:
    """The newest requests under the page's filters (htmx refreshes it every 5 s)."""
    services = services_of(request)
    webhook = await call(services.inbound.get, webhook_id_in_range(webhook_id))
    log = await _log(request, webhook_id)
    status = 422 if log["filter_errors"] else 200
    return render(request, "_inbound_requests.html", {"webhook": webhook, **log}, status=status)


@router.post("/inbound/{webhook_id:int}/settings")
async def inbound_settings(request: Request, webhook_id: int) -> Response:
    require_admin(request)
    form = await read_form(request)
    values = {name: text_field(form, name) for name in SETTINGS_FIELDS}
    errors = FormErrors()
    if not values["name"]:
        errors.add("name", "A webhook needs a name.")
    elif len(values["name"]) > 255:
        errors.add("name", "At most 255 characters.")
    changes: dict[str, Any] = {
        "name": values["name"],
        "rate_limit": _rate_limit(values["rate_limit"], errors),
        "enabled": values["enabled"] == "on",
    }
    if values["secret"]:
        changes["secret"] = values["secret"]
    if not errors:
        try:
            await call(
                services_of(request).inbound.update, webhook_id_in_range(webhook_id), changes
            )
        except ValidationFailed as exc:
            errors.add(field_of(exc, SETTINGS_FIELDS), exc.message)
    if errors:
        values["secret"] = ""  # never echoed back into the page
        return await _detail(request, webhook_id, errors=errors, values=values, status=422)
    return RedirectResponse(f"/inbound/{webhook_id}?saved=1", status_code=303)


@router.post("/inbound/{webhook_id:int}/delete")
async def inbound_delete(request: Request, webhook_id: int) -> Response:
    require_admin(request)
    await call(services_of(request).inbound.delete, webhook_id_in_range(webhook_id))
    return RedirectResponse("/inbound", status_code=303)


# -- one request --------------------------------------------------------------------------------


async def _request_page(
    request: Request,
    webhook_id: int,
    request_id: int,
    *,
    problem: str | None = None,
    status: int = 200,
) -> Response:
    services = services_of(request)
    webhook = await call(services.inbound.get, webhook_id_in_range(webhook_id))
    if not 1 <= request_id <= MAX_ID:
        raise NotFound(f"No request {request_id} for inbound webhook {webhook_id}.")
    logged = await call(services.inbound.request, webhook_id, request_id)
    context = {
        "webhook": webhook,
        "req": logged,
        "received": show_time(logged["received_at"]),
        "processed": show_time(logged["processed_at"]),
        "body": pretty_body(logged["body"]),
        "actions": pretty_json(logged["actions"]) if logged["actions"] is not None else None,
        "replayed": request.query_params.get("replayed") == "1",
        "problem": problem,
        "active": "inbound",
    }
    return render(request, "inbound_request.html", context, status=status)


@router.get("/inbound/{webhook_id:int}/requests/{request_id:int}")
async def inbound_request(request: Request, webhook_id: int, request_id: int) -> Response:
    return await _request_page(request, webhook_id, request_id)


@router.post("/inbound/{webhook_id:int}/requests/{request_id:int}/replay")
async def inbound_replay(request: Request, webhook_id: int, request_id: int) -> Response:
    """Run the webhook's current rules on the logged request again (as the API's replay)."""
    require_admin(request)
    if not 1 <= request_id <= MAX_ID:
        raise NotFound(f"No request {request_id} for inbound webhook {webhook_id}.")
    try:
        await call(services_of(request).inbound.replay, webhook_id_in_range(webhook_id), request_id)
    except (ValidationFailed, Conflict) as exc:  # not replayable (rejected, not yet processed)
        return await _request_page(
            request, webhook_id, request_id, problem=exc.message, status=exc.status
        )
    return RedirectResponse(
        f"/inbound/{webhook_id}/requests/{request_id}?replayed=1", status_code=303
    )
