"""An outbound endpoint's page: settings, its secret (revealed or rotated by an admin), a test
send, its deliveries (filtered, paginated, live) and one delivery's attempts, retry and recover.

Every action calls :class:`hookhub.outbound.endpoints.EndpointService` as the API's routes do,
and checks ``require_admin`` first. What this module must never do: put a secret in a page that
a GET can fetch (revealing answers a POST, which carries the CSRF token).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hookhub.api.schemas import MAX_ID
from hookhub.core.catalog import EVENT_TYPES
from hookhub.core.pagination import encode_cursor
from hookhub.errors import Conflict, NotFound, ValidationFailed
from hookhub.records.outbound import Delivery, Endpoint
from hookhub.store.messages import MessageStore
from hookhub.web.auth import require_admin
from hookhub.web.pages.inbound_common import (
    PAGE,
    FormErrors,
    call,
    cursor_of,
    optional_choice,
    parse_local_time,
    pretty_body,
    query_string,
    read_form,
    services_of,
    show_time,
    text_field,
)
from hookhub.web.pages.outbound import endpoint_id_in_range
from hookhub.web.render import render

router = APIRouter(include_in_schema=False)

STATUSES = ("pending", "succeeded", "failed", "exhausted", "waiting", "collapsed", "cancelled")
EXCERPT = 2000
"""Characters of a response body a delivery's page shows."""


def _delivery_row(delivery: Delivery) -> dict[str, Any]:
    last = delivery.attempts[-1] if delivery.attempts else None
    return {
        "d": delivery,
        "created": show_time(delivery.created_at),
        "updated": show_time(delivery.updated_at),
        "last_code": last.status_code if last else None,
        "last_error": last.error if last else None,
        "next_at": show_time(delivery.next_attempt_at)
        if delivery.status in ("pending", "failed") and delivery.next_attempt_at
        else None,
    }


async def _deliveries(request: Request, endpoint_id: int) -> dict[str, Any]:
    status = optional_choice(request.query_params.get("status"), STATUSES, "status")
    before_id = cursor_of(request)
    items = await call(
        services_of(request).endpoints.deliveries,
        endpoint_id,
        status=status,
        before_id=before_id,
        limit=PAGE,
    )
    next_cursor = encode_cursor(items[-1].id) if len(items) == PAGE else None
    return {
        "deliveries": [_delivery_row(d) for d in items],
        "status_filter": status or "",
        "statuses": STATUSES,
        "next_query": query_string({"status": status, "cursor": next_cursor})
        if next_cursor
        else None,
        "live": before_id is None,
        "live_query": query_string({"status": status}),
    }


async def _page(
    request: Request,
    endpoint_id: int,
    *,
    secret: str | None = None,
    notice: str | None = None,
    errors: FormErrors | None = None,
    recover_values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    services = services_of(request)
    endpoint: Endpoint = await call(services.endpoints.get, endpoint_id_in_range(endpoint_id))
    query = request.query_params
    if notice is None:
        if query.get("created") == "1":
            notice = "Endpoint created. Reveal its signing secret below to verify deliveries."
        elif query.get("saved") == "1":
            notice = "Saved."
        elif query.get("recovered") == "1":
            notice = (
                f"Recovered: {query.get('requeued', '0')} deliveries requeued,"
                f" {query.get('backfilled', '0')} missed messages backfilled."
            )
    context = {
        "endpoint": endpoint,
        "api": endpoint.to_api(),
        "secret": secret,
        "notice": notice,
        "errors": errors or FormErrors(),
        "recover": recover_values or {"since": "", "until": ""},
        "event_types": [k.name for k in EVENT_TYPES],
        "failing_since": show_time(endpoint.failing_since) if endpoint.failing_since else None,
        "active": "outbound",
        **(await _deliveries(request, endpoint_id)),
    }
    return render(request, "outbound_detail.html", context, status=status)


@router.get("/outbound/{endpoint_id:int}")
async def outbound_detail(request: Request, endpoint_id: int) -> Response:
    return await _page(request, endpoint_id)


@router.get("/outbound/{endpoint_id:int}/deliveries")
async def outbound_deliveries_partial(request: Request, endpoint_id: int) -> Response:
    """The newest deliveries under the page's status filter (htmx refreshes it every 5 s)."""
    endpoint = await call(services_of(request).endpoints.get, endpoint_id_in_range(endpoint_id))
    context = {"endpoint": endpoint, **(await _deliveries(request, endpoint_id))}
    return render(request, "_outbound_deliveries.html", context)


# -- the secret ---------------------------------------------------------------------------------


async def _show_secret(request: Request, endpoint: Endpoint, notice: str) -> Response:
    if request.headers.get("hx-request") == "true":
        context = {"endpoint": endpoint, "secret": endpoint.secret, "notice": notice}
        return render(request, "_outbound_secret.html", context)
    return await _page(request, endpoint.id, secret=endpoint.secret, notice=notice)


@router.post("/outbound/{endpoint_id:int}/secret")
async def outbound_reveal_secret(request: Request, endpoint_id: int) -> Response:
    require_admin(request)
    endpoint = await call(services_of(request).endpoints.get, endpoint_id_in_range(endpoint_id))
    return await _show_secret(request, endpoint, "The signing secret (keep it private).")


@router.post("/outbound/{endpoint_id:int}/rotate")
async def outbound_rotate_secret(request: Request, endpoint_id: int) -> Response:
    """A new secret signs from now on; the old one keeps signing for the rotation overlap."""
    require_admin(request)
    services = services_of(request)
    endpoint = await call(services.endpoints.rotate_secret, endpoint_id_in_range(endpoint_id))
    overlap = services.settings.secret_rotation_overlap
    notice = f"Secret rotated. The previous one keeps signing for {overlap:g} s too."
    return await _show_secret(request, endpoint, notice)


# -- actions ------------------------------------------------------------------------------------


@router.post("/outbound/{endpoint_id:int}/enabled")
async def outbound_enabled(request: Request, endpoint_id: int) -> Response:
    require_admin(request)
    form = await read_form(request)
    enabled = text_field(form, "enabled") == "true"
    await call(
        services_of(request).endpoints.update,
        endpoint_id_in_range(endpoint_id),
        {"enabled": enabled},
    )
    return RedirectResponse(f"/outbound/{endpoint_id}?saved=1", status_code=303)


@router.post("/outbound/{endpoint_id:int}/test")
async def outbound_test(request: Request, endpoint_id: int) -> Response:
    require_admin(request)
    form = await read_form(request)
    event_type = text_field(form, "event_type", limit=64)
    try:
        _, delivery_id = await call(
            services_of(request).endpoints.send_test, endpoint_id_in_range(endpoint_id), event_type
        )
    except ValidationFailed as exc:
        errors = FormErrors()
        errors.add("event_type", exc.message)
        return await _page(request, endpoint_id, errors=errors, status=422)
    return RedirectResponse(
        f"/outbound/{endpoint_id}/deliveries/{delivery_id}?sent=1", status_code=303
    )


@router.post("/outbound/{endpoint_id:int}/recover")
async def outbound_recover(request: Request, endpoint_id: int) -> Response:
    """Requeue failed and exhausted deliveries of a window, and backfill missed messages."""
    require_admin(request)
    form = await read_form(request)
    values = {"since": text_field(form, "since"), "until": text_field(form, "until")}
    errors = FormErrors()
    since = parse_local_time(values["since"], "since", errors)
    until = parse_local_time(values["until"], "until", errors)
    if since is None and "since" not in errors:
        errors.add("since", "Give the start of the window.")
    if not errors:
        assert since is not None
        try:
            counts = await call(
                services_of(request).endpoints.recover,
                endpoint_id_in_range(endpoint_id),
                since,
                until,
            )
        except ValidationFailed as exc:
            errors.add("until" if "until" in exc.message else "since", exc.message)
    if errors:
        return await _page(request, endpoint_id, errors=errors, recover_values=values, status=422)
    target = query_string({"recovered": 1, **counts})
    return RedirectResponse(f"/outbound/{endpoint_id}?{target}", status_code=303)


# -- one delivery -------------------------------------------------------------------------------


async def _delivery_context(request: Request, endpoint_id: int, delivery_id: int) -> dict[str, Any]:
    """One delivery of the endpoint (404 for another endpoint's) with its attempts."""
    services = services_of(request)
    endpoint = await call(services.endpoints.get, endpoint_id_in_range(endpoint_id))
    if not 1 <= delivery_id <= MAX_ID:
        raise NotFound(f"No delivery {delivery_id}.")
    delivery = await call(services.endpoints.delivery, delivery_id)
    if delivery.endpoint_id != endpoint.id:
        raise NotFound(f"No delivery {delivery_id} for webhook {endpoint_id}.")
    attempts = [
        {
            "a": a,
            "at": show_time(a.at),
            "duration": f"{a.duration_ms:.0f} ms",
            "excerpt": (a.response_body or "")[:EXCERPT],
            "cut": len(a.response_body or "") > EXCERPT,
        }
        for a in delivery.attempts
    ]
    return {"endpoint": endpoint, "row": _delivery_row(delivery), "attempts": attempts}


async def _delivery_page(
    request: Request,
    endpoint_id: int,
    delivery_id: int,
    *,
    problem: str | None = None,
    status: int = 200,
) -> Response:
    services = services_of(request)
    context = await _delivery_context(request, endpoint_id, delivery_id)
    message_id = context["row"]["d"].message_id

    def message() -> dict[str, Any] | None:
        with services.db.read() as conn:
            row = MessageStore(conn).get(message_id)
        if row is None:
            return None
        payload = row.payload if isinstance(row.payload, str) else bytes(row.payload).decode()
        return {"type": row.type, "payload": pretty_body(payload)}

    query = request.query_params
    notice = None
    if query.get("retried") == "1":
        notice = "Retry queued: a worker sends it as soon as it is free."
    elif query.get("sent") == "1":
        notice = "Test message queued."
    context.update(message=await call(message), problem=problem, notice=notice, active="outbound")
    return render(request, "outbound_delivery.html", context, status=status)


@router.get("/outbound/{endpoint_id:int}/deliveries/{delivery_id:int}")
async def outbound_delivery(request: Request, endpoint_id: int, delivery_id: int) -> Response:
    return await _delivery_page(request, endpoint_id, delivery_id)


@router.get("/outbound/{endpoint_id:int}/deliveries/{delivery_id:int}/live")
async def outbound_delivery_live(request: Request, endpoint_id: int, delivery_id: int) -> Response:
    """The delivery's status and attempts (htmx refreshes them while it is not settled)."""
    context = await _delivery_context(request, endpoint_id, delivery_id)
    return render(request, "_outbound_delivery_live.html", context)


@router.post("/outbound/{endpoint_id:int}/deliveries/{delivery_id:int}/retry")
async def outbound_retry(request: Request, endpoint_id: int, delivery_id: int) -> Response:
    """Send the delivery again as soon as a worker is free (409 while one holds it)."""
    require_admin(request)
    services = services_of(request)
    endpoint = await call(services.endpoints.get, endpoint_id_in_range(endpoint_id))
    if not 1 <= delivery_id <= MAX_ID:
        raise NotFound(f"No delivery {delivery_id}.")
    current = await call(services.endpoints.delivery, delivery_id)
    if current.endpoint_id != endpoint.id:
        raise NotFound(f"No delivery {delivery_id} for webhook {endpoint_id}.")
    try:
        await call(services.endpoints.retry_delivery, delivery_id)
    except Conflict as exc:
        return await _delivery_page(
            request, endpoint_id, delivery_id, problem=exc.message, status=409
        )
    return RedirectResponse(
        f"/outbound/{endpoint_id}/deliveries/{delivery_id}?retried=1", status_code=303
    )
