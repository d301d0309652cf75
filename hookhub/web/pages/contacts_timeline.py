"""A contact's one timeline: its custom events, its emails (sent, opened, clicked, ...), its
automation enrollments (entered, each step, exited), the inbound requests whose rules touched
it and the outbound messages about it with their deliveries, newest first, a page at a time.

Each source (``store/dashboard_timeline.py``) answers entries older than the page's time and how
far down it looked; the page shows what every source has covered, so that nothing older is shown
before something newer that a source has not reached yet. The cursor carries the time and, for
the two scanned sources, the key each goes on from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from hookhub.errors import BadRequest
from hookhub.records.contacts import Contact
from hookhub.services import Services
from hookhub.store.dashboard_timeline import (
    RANKS,
    SCAN_WINDOW,
    Before,
    TimelineEntry,
    automation_entries,
    custom_event_entries,
    email_entries,
    inbound_entries,
    outbound_entries,
)
from hookhub.web.people_common import (
    MAX_ID,
    blocking,
    check_id,
    compact_json,
    decode_state,
    encode_state,
    now,
    when,
)
from hookhub.web.render import render

router = APIRouter(include_in_schema=False)
PAGE = 30
MAX_TIME = 32503680000.0
"""Year 3000: a cursor's time beyond it is not one this page made."""
WINDOW = SCAN_WINDOW
"""Rows the message and inbound-request scans look at per page."""
CREATED_MARGIN = 60.0
"""Seconds before a contact's creation from which messages about it are looked for."""


@dataclass(slots=True)
class TimelinePage:
    items: list[dict[str, Any]]
    next_cursor: str | None


def _cursor(raw: str | None) -> tuple[Before | None, str | None, int | None]:
    """(the last entry shown, the messages' and the inbound requests' scan positions)."""
    state = decode_state(raw)
    t, s, r, m, i = (state.get(k) for k in ("t", "s", "r", "m", "i"))
    valid = (
        (t is None or isinstance(t, int | float))
        and (s is None or (isinstance(s, int) and s in RANKS.values()))
        and (r is None or isinstance(r, int | str))
        and (m is None or isinstance(m, str))
        and (i is None or isinstance(i, int))
        and not any(isinstance(v, bool) for v in (t, s, r, i))
        and (s is None or (t is not None and r is not None))
    )
    valid = valid and (
        (t is None or 0 <= t < MAX_TIME)
        and (i is None or 1 <= i <= MAX_ID)
        and (not isinstance(r, int) or 0 <= r <= MAX_ID)
        and (not isinstance(r, str) or len(r) <= 64)
        and (m is None or len(m) <= 64)
    )
    if not valid:
        raise BadRequest("The cursor is not one this page made.", details={"field": "cursor"})
    if t is None:
        return None, m, i
    if s is not None and isinstance(r, int) != (s != RANKS["outbound"]):
        raise BadRequest("The cursor is not one this page made.", details={"field": "cursor"})
    return Before(float(t), s, r), m, i


def timeline_page(services: Services, contact: Contact, cursor: str | None) -> TimelinePage:
    last, below_message, below_request = _cursor(cursor)
    before = last or Before(now() + 1.0)
    cid = contact.id
    with services.db.read() as conn:
        sources = [
            custom_event_entries(conn, cid, before=before, limit=PAGE),
            email_entries(conn, cid, before=before, limit=PAGE),
            *automation_entries(conn, cid, before=before, limit=PAGE),
        ]
        inbound = inbound_entries(conn, cid, before=before, below_id=below_request, window=WINDOW)
        outbound = outbound_entries(
            conn,
            cid,
            before=before,
            below_id=below_message,
            since=contact.created_at.timestamp() - CREATED_MARGIN,
            window=WINDOW,
        )
    sources += [inbound, outbound]
    floors = [s.floor for s in sources if s.floor is not None]
    floor = max(floors) if floors else None
    merged = sorted(
        (e for s in sources for e in s.entries if floor is None or e.key >= floor),
        key=lambda e: e.key,
        reverse=True,
    )
    cut = floor
    if len(merged) > PAGE:
        merged = merged[:PAGE]
        cut = merged[-1].key
    next_cursor = None
    if cut is not None:
        # A scanned source goes on below what it looked at once the page has reached its
        # floor; otherwise it looks at the same rows again for what is older than the cut.
        state = {
            "t": cut[0],
            "s": cut[1],
            "r": cut[2],
            "m": outbound.resume
            if outbound.floor is not None and outbound.floor >= cut
            else below_message,
            "i": inbound.resume
            if inbound.floor is not None and inbound.floor >= cut
            else below_request,
        }
        next_cursor = encode_state({k: v for k, v in state.items() if v is not None})
    return TimelinePage([describe(e, cid) for e in merged], next_cursor)


def describe(entry: TimelineEntry, contact_id: int) -> dict[str, Any]:
    """What a person reads for one entry: a label, a sentence, links."""
    data = entry.data
    item: dict[str, Any] = {
        "when": when(entry.at),
        "source": entry.source,
        "links": [],
        "detail": None,
    }
    if entry.source == "event":
        item["label"] = "Event"
        item["title"] = f"{entry.kind}"
        properties = data.get("properties")
        item["detail"] = compact_json(properties) if properties else None
    elif entry.source == "email":
        item["label"] = "Email"
        subject = data.get("subject") or "(no subject yet)"
        item["title"] = f"{entry.kind}: {subject}"
        email_id = data.get("email_id")
        item["links"] = [(f"/emails/{email_id}", f"email #{email_id}")]
        if data.get("campaign_id"):
            cid = data["campaign_id"]
            item["links"].append((f"/campaigns/{cid}", f"campaign #{cid}"))
        detail = data.get("detail")
        item["detail"] = compact_json(detail) if detail else None
    elif entry.source == "automation":
        item["label"] = "Automation"
        name = data.get("automation") or f"automation #{data.get('automation_id')}"
        if entry.kind == "entered":
            item["title"] = f"entered {name}"
        elif entry.kind == "exited":
            item["title"] = f"left {name} ({data.get('reason') or data.get('status')})"
        else:
            item["title"] = (
                f"{name}: step {data.get('step_id')} ({data.get('step_kind')}) "
                f"{data.get('outcome')}"
            )
        aid = data.get("automation_id")
        item["links"] = [(f"/automations/{aid}?contact={contact_id}", "path")]
    elif entry.source == "inbound":
        item["label"] = "Webhook in"
        hook = data.get("webhook") or f"inbound webhook #{data.get('webhook_id')}"
        event = data.get("event_type")
        item["title"] = f"{hook}: {event or 'request'} ({entry.kind})"
        item["links"] = [
            (f"/inbound/{data.get('webhook_id')}/requests/{entry.ref}", f"request #{entry.ref}")
        ]
    else:
        item["label"] = "Webhook out"
        item["title"] = f"{entry.kind}"
        shipped = data.get("deliveries") or []
        item["detail"] = f"{len(shipped)} deliveries" if shipped else "no endpoint subscribed"
        item["links"] = [
            (
                f"/outbound/{d['endpoint_id']}/deliveries/{d['id']}",
                f"endpoint #{d['endpoint_id']}: {d['status']}"
                + (f" ({d['status_code']})" if d.get("status_code") else ""),
            )
            for d in shipped[:5]
        ]
    return item


@router.get("/contacts/{contact_id:int}/timeline")
async def contact_timeline(request: Request, contact_id: int) -> Response:
    """One page of the timeline (htmx asks for the next one in place)."""
    check_id(contact_id)
    services: Services = request.app.state.services
    cursor = request.query_params.get("cursor")

    def load() -> tuple[Contact, TimelinePage]:
        with services.crm.reader() as crm:
            contact = crm.find_contact(contact_id)
        return contact, timeline_page(services, contact, cursor)

    contact, page = await blocking(load)
    return render(
        request,
        "_contacts_timeline.html",
        {"contact": contact, "timeline": page},
    )
