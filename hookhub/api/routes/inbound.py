"""/api/v1/inbound-webhooks: receive URLs, their rules, their request log, replay and preview."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from hookhub.api.deps import DEFAULT_PAGE, Cursor, Limit, ServicesDep
from hookhub.api.inbound_schemas import (
    InboundCreate,
    InboundOut,
    InboundPatch,
    InboundPreview,
    InboundRequestOut,
    InboundRequestSummaryOut,
)
from hookhub.api.responses import JSON
from hookhub.api.schemas import MAX_ID, PageOut
from hookhub.core import jsoncodec
from hookhub.core.pagination import decode_cursor, encode_cursor

router = APIRouter(prefix="/inbound-webhooks", tags=["inbound webhooks"])
InboundId = Annotated[int, Path(ge=1, le=MAX_ID)]
RequestId = Annotated[int, Path(ge=1, le=MAX_ID)]
Status = Literal["received", "processed", "failed", "rejected", "duplicate"]


@router.post("", status_code=201, response_model=InboundOut)
def create_inbound(body: InboundCreate, services: ServicesDep) -> Response:
    webhook, secret = services.inbound.create(body.model_dump())
    answer = {**webhook.to_api(services.settings.base_url), "secret": secret}
    return JSON(answer, status_code=201)


@router.get("", response_model=PageOut[InboundOut])
def list_inbound(
    services: ServicesDep, limit: Limit = DEFAULT_PAGE, cursor: Cursor = None
) -> Response:
    items = services.inbound.page(after_id=decode_cursor(cursor), limit=limit)
    base = services.settings.base_url
    next_cursor = encode_cursor(items[-1].id) if len(items) == limit else None
    return JSON({"data": [w.to_api(base) for w in items], "next_cursor": next_cursor})


@router.get("/{webhook_id}", response_model=InboundOut)
def get_inbound(webhook_id: InboundId, services: ServicesDep) -> Response:
    webhook = services.inbound.get(webhook_id).to_api(services.settings.base_url)
    unlogged = services.inbound.unlogged(webhook_id, time.time() - 24 * 3600)
    return JSON({**webhook, "unlogged_24h": unlogged})


@router.patch("/{webhook_id}", response_model=InboundOut)
def patch_inbound(webhook_id: InboundId, body: InboundPatch, services: ServicesDep) -> Response:
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    webhook = services.inbound.update(webhook_id, changes)
    return JSON(webhook.to_api(services.settings.base_url))


@router.delete("/{webhook_id}", status_code=204)
def delete_inbound(webhook_id: InboundId, services: ServicesDep) -> Response:
    services.inbound.delete(webhook_id)
    return Response(status_code=204)


@router.get("/{webhook_id}/requests", response_model=PageOut[InboundRequestSummaryOut])
def list_requests(
    webhook_id: InboundId,
    services: ServicesDep,
    status: Annotated[Status | None, Query()] = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Response:
    items = services.inbound.requests(
        webhook_id, status=status, before_id=decode_cursor(cursor), limit=limit
    )
    next_cursor = encode_cursor(items[-1]["id"]) if len(items) == limit else None
    return JSON({"data": items, "next_cursor": next_cursor})


@router.get("/{webhook_id}/requests/{request_id}", response_model=InboundRequestOut)
def get_request(webhook_id: InboundId, request_id: RequestId, services: ServicesDep) -> Response:
    return JSON(services.inbound.request(webhook_id, request_id))


@router.post("/{webhook_id}/requests/{request_id}/replay", response_model=InboundRequestOut)
def replay_request(webhook_id: InboundId, request_id: RequestId, services: ServicesDep) -> Response:
    return JSON(services.inbound.replay(webhook_id, request_id))


@router.post("/{webhook_id}/preview")
def preview(webhook_id: InboundId, body: InboundPreview, services: ServicesDep) -> Response:
    raw = body.body.encode() if isinstance(body.body, str) else jsoncodec.dumps(body.body)
    headers = body.headers or {}
    if not any(name.lower() == "content-type" for name in headers):
        headers = {**headers, "content-type": "application/json"}
    return JSON(services.inbound.preview(webhook_id, raw, headers))
