"""Campaign pages: the list with status and stats, create (a template and lists), a campaign's
page with live stats (htmx refreshes them), send now or at a time, pause, resume, cancel,
delete, and send a test.

Every change goes through :class:`CampaignService` as the API's ``/campaigns`` routes do, after
``require_admin``; a change the campaign's state refuses (409) or a mistake in the form (422)
shows the page again with the reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from hookhub.core.pagination import decode_cursor, encode_cursor
from hookhub.email.campaigns import CampaignService
from hookhub.email.template_service import TemplateService
from hookhub.errors import HookhubError, NotFound, ValidationFailed
from hookhub.records.campaign import Campaign
from hookhub.services import Services
from hookhub.web.auth import require_admin
from hookhub.web.people_common import (
    as_list,
    blocking,
    check_id,
    error_field,
    parse_int,
    read_form,
    redirect,
    text,
    when,
)
from hookhub.web.render import render

router = APIRouter(include_in_schema=False)
PAGE = 20
CHOICES = 500
"""Templates and lists offered in the create form."""
LIVE = ("scheduled", "sending", "paused", "sent")
"""Statuses whose numbers still move: their page refreshes them."""
FORM_FIELDS = ("name", "template_id", "list_ids", "exclude_list_ids")


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _campaigns(services: Services) -> CampaignService:
    return CampaignService(services.db, services.outbox, services.settings)


def _row(campaign: Campaign) -> dict[str, Any]:
    return {
        "campaign": campaign,
        "stats": campaign.stats,
        "created": when(campaign.created_at),
        "scheduled": when(campaign.scheduled_at),
    }


@router.get("/campaigns")
async def campaigns_index(request: Request) -> Response:
    services = _services(request)
    cursor = request.query_params.get("cursor")

    def load() -> list[Campaign]:
        service = _campaigns(services)
        items = service.page(before_id=decode_cursor(cursor), limit=PAGE)
        # Stats only for campaigns that have emails: a draft has none to count.
        return [service.get(c.id) if c.status != "draft" else c for c in items]

    items = await blocking(load)
    return render(
        request,
        "campaigns_list.html",
        {
            "active": "campaigns",
            "rows": [_row(c) for c in items],
            "next_cursor": encode_cursor(items[-1].id) if len(items) == PAGE else None,
        },
    )


def _choices(services: Services) -> dict[str, Any]:
    templates = TemplateService(services.crm, services.settings.base_url).page(
        after_id=None, limit=CHOICES
    )
    with services.crm.reader() as crm:
        lists = crm.lists.page(after_id=None, limit=CHOICES)
    return {"templates": templates, "lists": lists}


async def _new_page(
    request: Request,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    context = await blocking(_choices, _services(request))
    form = form or {}
    context.update(
        active="campaigns",
        form=form,
        chosen={k: set(as_list(form.get(k))) for k in ("list_ids", "exclude_list_ids")},
        errors=errors or {},
    )
    return render(request, "campaigns_new.html", context, status=status)


@router.get("/campaigns/new")
async def campaign_new(request: Request) -> Response:
    return await _new_page(request)


def _ids(values: Any, field: str) -> list[int]:
    found = []
    for value in as_list(values):
        number = parse_int(value, field)
        if number is not None:
            found.append(number)
    return found


@router.post("/campaigns")
async def campaign_create(request: Request) -> Response:
    require_admin(request)
    services = _services(request)
    form = await read_form(request)

    def create() -> Campaign:
        name = text(form, "name")
        if not name or len(name) > 255:
            raise ValidationFailed("A name of 1 to 255 characters.", details={"field": "name"})
        template_id = parse_int(text(form, "template_id"), "template_id")
        if template_id is None:
            raise ValidationFailed("Choose a template.", details={"field": "template_id"})
        fields = {
            "name": name,
            "template_id": template_id,
            "list_ids": _ids(form.get("list_ids"), "list_ids"),
            "exclude_list_ids": _ids(form.get("exclude_list_ids"), "exclude_list_ids"),
        }
        return _campaigns(services).create(fields)

    try:
        created = await blocking(create)
    except HookhubError as exc:
        if exc.status >= 500:
            raise
        field = error_field(exc, "name")
        field = field if field in FORM_FIELDS else "name"
        return await _new_page(request, form=form, errors={field: exc.message}, status=422)
    return redirect(f"/campaigns/{created.id}")


async def _detail_page(
    request: Request,
    campaign_id: int,
    *,
    errors: dict[str, str] | None = None,
    status: int = 200,
    notice: str | None = None,
) -> Response:
    check_id(campaign_id)
    services = _services(request)

    def load() -> dict[str, Any]:
        campaign = _campaigns(services).get(campaign_id)
        with services.crm.reader() as crm:
            names = crm.lists.names([*campaign.list_ids, *campaign.exclude_list_ids])
        return {"campaign": campaign, "list_names": names}

    context = await blocking(load)
    campaign = context["campaign"]
    context.update(
        active="campaigns",
        live=campaign.status in LIVE,
        stats=campaign.stats,
        times={
            "created": when(campaign.created_at),
            "scheduled": when(campaign.scheduled_at),
            "started": when(campaign.started_at),
            "finished": when(campaign.finished_at),
        },
        errors=errors or {},
        notice=notice,
    )
    return render(request, "campaigns_detail.html", context, status=status)


@router.get("/campaigns/{campaign_id:int}")
async def campaign_detail(request: Request, campaign_id: int) -> Response:
    return await _detail_page(request, campaign_id)


@router.get("/campaigns/{campaign_id:int}/stats")
async def campaign_stats_partial(request: Request, campaign_id: int) -> Response:
    """The stats alone (what the campaign page's htmx refresh swaps in)."""
    check_id(campaign_id)
    campaign = await blocking(_campaigns(_services(request)).get, campaign_id)
    return render(
        request,
        "_campaigns_stats.html",
        {"campaign": campaign, "stats": campaign.stats, "live": campaign.status in LIVE},
    )


def _when(value: str) -> datetime | None:
    """A ``datetime-local`` value, taken as UTC (the page says so)."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValidationFailed(
            "Give a date and time such as 2030-01-31T09:00.", details={"field": "scheduled_at"}
        ) from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@router.post("/campaigns/{campaign_id:int}/{action}")
async def campaign_action(request: Request, campaign_id: int, action: str) -> Response:
    """send (now, or at ``scheduled_at``), pause, resume, cancel, delete, test."""
    require_admin(request)
    check_id(campaign_id)
    services = _services(request)
    form = await read_form(request)
    service = _campaigns(services)
    notice = None

    def act() -> str | None:
        if action == "send":
            at = _when(text(form, "scheduled_at"))
            done = service.send(campaign_id, at)
            return "Scheduled." if done.status == "scheduled" else "Sending started."
        if action == "pause":
            service.pause(campaign_id)
            return "Paused."
        if action == "resume":
            service.resume(campaign_id)
            return "Resumed."
        if action == "cancel":
            service.cancel(campaign_id)
            return "Cancelled."
        if action == "test":
            addresses = [a.strip() for a in text(form, "emails").replace(",", "\n").splitlines()]
            addresses = [a for a in addresses if a]
            if not addresses or len(addresses) > 50:
                raise ValidationFailed("Give 1 to 50 addresses.", details={"field": "emails"})
            try:
                sent = service.test(campaign_id, addresses)
            except ValidationFailed as exc:
                raise ValidationFailed(exc.message, details={"field": "emails"}) from exc
            return "Test queued: " + ", ".join(f"{e.to_email} ({e.status})" for e in sent)
        if action == "delete":
            if text(form, "confirm") != "yes":
                raise ValidationFailed(
                    "Tick the box to confirm: this cannot be undone.", details={"field": "delete"}
                )
            service.delete(campaign_id)
            return None
        raise ValidationFailed(f"Unknown action {action!r}.", details={"field": "action"})

    if action not in ("send", "pause", "resume", "cancel", "test", "delete"):
        raise NotFound("No such page.", details={"action": action})
    try:
        notice = await blocking(act)
    except HookhubError as exc:
        if exc.status >= 500 or exc.status == 404:
            raise
        field = error_field(exc, "action")
        field = field if field in ("emails", "scheduled_at", "delete") else "action"
        return await _detail_page(
            request, campaign_id, errors={field: exc.message}, status=exc.status
        )
    if action == "delete":
        return redirect("/campaigns")
    return await _detail_page(request, campaign_id, notice=notice)
