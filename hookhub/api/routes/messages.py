"""/api/v1/messages and /api/v1/event-types: what Hookhub has sent or will send."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from hookhub.api.deps import DEFAULT_PAGE, Cursor, Limit, ServicesDep
from hookhub.api.responses import JSON
from hookhub.api.schemas import MessageDetailOut, MessageOut, PageOut, Text
from hookhub.core.catalog import EVENT_TYPES
from hookhub.core.pagination import decode_text_cursor, encode_cursor

router = APIRouter(tags=["messages"])


@router.get("/messages", response_model=PageOut[MessageOut])
def list_messages(
    services: ServicesDep,
    event_type: Annotated[Text | None, Query(max_length=64)] = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Response:
    """Oldest first; a page also ends once its payloads reach about 4 MiB (follow the cursor)."""
    page = services.messages.page(
        after_id=decode_text_cursor(cursor), limit=limit, event_type=event_type
    )
    next_cursor = encode_cursor(page.next_after) if page.next_after is not None else None
    return JSON({"data": page.items, "next_cursor": next_cursor})


@router.get("/messages/{message_id}", response_model=MessageDetailOut)
def get_message(
    message_id: Annotated[Text, Path(max_length=40)], services: ServicesDep
) -> Response:
    return JSON(services.messages.get(message_id))


@router.get("/event-types")
def list_event_types() -> Response:
    return JSON({"data": [t.to_api() for t in EVENT_TYPES], "next_cursor": None})
