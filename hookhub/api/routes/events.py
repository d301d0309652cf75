"""/api/v1/events: custom events that other apps report about contacts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from hookhub.api.deps import DEFAULT_PAGE, Cursor, Limit, ServicesDep
from hookhub.api.responses import JSON
from hookhub.api.schemas import EventCreate, EventOut, PageOut, Text
from hookhub.core.pagination import decode_cursor, encode_cursor

router = APIRouter(prefix="/events", tags=["events"])


@router.post("", status_code=201, response_model=EventOut)
def track_event(body: EventCreate, services: ServicesDep) -> Response:
    with services.crm.transaction() as crm:
        event, _contact = crm.track_event(
            body.event_name,
            identifiers=body.identifiers.model_dump(exclude_none=True),
            contact_properties=body.contact_properties,
            event_properties=body.event_properties,
            event_date=body.event_date,
        )
    return JSON(event.to_api(), status_code=201)


@router.get("", response_model=PageOut[EventOut])
def list_events(
    services: ServicesDep,
    contact: Annotated[str | None, Query(max_length=320, description="id or email")] = None,
    event_name: Annotated[Text | None, Query(max_length=255)] = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Response:
    after = decode_cursor(cursor)
    with services.crm.reader() as crm:
        contact_id = crm.find_contact(contact).id if contact is not None else None
        items = crm.events.page(
            after_id=after,
            limit=limit,
            contact_id=contact_id,
            event_name=event_name,
        )
    next_cursor = encode_cursor(items[-1].id) if len(items) == limit else None
    return JSON({"data": [e.to_api() for e in items], "next_cursor": next_cursor})
