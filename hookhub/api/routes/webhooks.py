"""/api/v1/webhooks and /api/v1/deliveries: outbound endpoints and what was sent to them."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from hookhub.api.deps import DEFAULT_PAGE, Cursor, Limit, ServicesDep
from hookhub.api.responses import JSON
from hookhub.api.schemas import (
    MAX_ID,
    DeliveryOut,
    DeliverySummaryOut,
    PageOut,
    Recover,
    Recovered,
    TestSend,
    TestSent,
    WebhookPreview,
    WebhookPreviewOut,
)
from hookhub.api.webhook_schemas import (
    RotateSecret,
    SecretOut,
    WebhookCreate,
    WebhookOut,
    WebhookPatch,
)
from hookhub.core.pagination import decode_cursor, encode_cursor

router = APIRouter(tags=["webhooks"])
WebhookId = Annotated[int, Path(ge=1, le=MAX_ID)]
DeliveryId = Annotated[int, Path(ge=1, le=MAX_ID)]
Status = Literal["pending", "succeeded", "failed", "exhausted", "waiting", "collapsed", "cancelled"]


@router.post("/webhooks", status_code=201, response_model=WebhookOut)
def create_webhook(body: WebhookCreate, services: ServicesDep) -> Response:
    spec = body.model_dump(exclude_none=True)
    endpoint = services.endpoints.create(spec)
    return JSON({**endpoint.to_api(), "secret": endpoint.secret}, status_code=201)


@router.get("/webhooks", response_model=PageOut[WebhookOut])
def list_webhooks(
    services: ServicesDep, limit: Limit = DEFAULT_PAGE, cursor: Cursor = None
) -> Response:
    items = services.endpoints.page(after_id=decode_cursor(cursor), limit=limit)
    next_cursor = encode_cursor(items[-1].id) if len(items) == limit else None
    return JSON({"data": [e.to_api() for e in items], "next_cursor": next_cursor})


@router.get("/webhooks/{webhook_id}", response_model=WebhookOut)
def get_webhook(webhook_id: WebhookId, services: ServicesDep) -> Response:
    return JSON(services.endpoints.get(webhook_id).to_api())


@router.get("/webhooks/{webhook_id}/secret", response_model=SecretOut)
def get_webhook_secret(webhook_id: WebhookId, services: ServicesDep) -> Response:
    return JSON({"secret": services.endpoints.get(webhook_id).secret})


@router.patch("/webhooks/{webhook_id}", response_model=WebhookOut)
def patch_webhook(webhook_id: WebhookId, body: WebhookPatch, services: ServicesDep) -> Response:
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    if "auth" in changes and changes["auth"] is not None:
        changes["auth"] = body.auth.model_dump() if body.auth else None
    if body.ignore_origins is not None:
        changes["ignore_origins"] = [o.model_dump(exclude_none=True) for o in body.ignore_origins]
    if changes.get("transform") is not None:
        assert body.transform is not None
        changes["transform"] = body.transform.model_dump(exclude_none=True)
    if changes.get("collapse") is not None:
        assert body.collapse is not None
        changes["collapse"] = body.collapse.model_dump()
    return JSON(services.endpoints.update(webhook_id, changes).to_api())


@router.delete("/webhooks/{webhook_id}", status_code=204)
def delete_webhook(webhook_id: WebhookId, services: ServicesDep) -> Response:
    services.endpoints.delete(webhook_id)
    return Response(status_code=204)


@router.post("/webhooks/{webhook_id}/rotate-secret", response_model=WebhookOut)
def rotate_secret(
    webhook_id: WebhookId, services: ServicesDep, body: RotateSecret | None = None
) -> Response:
    endpoint = services.endpoints.rotate_secret(webhook_id, body.secret if body else None)
    return JSON({**endpoint.to_api(), "secret": endpoint.secret})


@router.post("/webhooks/{webhook_id}/test", status_code=202, response_model=TestSent)
def send_test(webhook_id: WebhookId, body: TestSend, services: ServicesDep) -> Response:
    message_id, delivery_id = services.endpoints.send_test(webhook_id, body.event_type)
    return JSON({"message_id": message_id, "delivery_id": delivery_id}, status_code=202)


@router.post("/webhooks/{webhook_id}/preview", response_model=WebhookPreviewOut)
def preview_webhook(webhook_id: WebhookId, body: WebhookPreview, services: ServicesDep) -> Response:
    """What a delivery of an event type's example, or of a stored message, would send."""
    shown = services.endpoints.preview(
        webhook_id, event_type=body.event_type, message_id=body.message_id
    )
    return JSON(shown)


@router.get("/webhooks/{webhook_id}/deliveries", response_model=PageOut[DeliverySummaryOut])
def list_deliveries(
    webhook_id: WebhookId,
    services: ServicesDep,
    status: Annotated[Status | None, Query()] = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Response:
    items = services.endpoints.deliveries(
        webhook_id, status=status, before_id=decode_cursor(cursor), limit=limit
    )
    next_cursor = encode_cursor(items[-1].id) if len(items) == limit else None
    data = [d.to_api(with_bodies=False) for d in items]
    return JSON({"data": data, "next_cursor": next_cursor})


@router.post("/webhooks/{webhook_id}/recover", status_code=202, response_model=Recovered)
def recover(webhook_id: WebhookId, body: Recover, services: ServicesDep) -> Response:
    counts = services.endpoints.recover(webhook_id, body.since, body.until)
    return JSON(counts, status_code=202)


@router.get("/deliveries/{delivery_id}", response_model=DeliveryOut)
def get_delivery(delivery_id: DeliveryId, services: ServicesDep) -> Response:
    """One delivery with every attempt, response bodies included (lists leave those out)."""
    return JSON(services.endpoints.delivery(delivery_id).to_api())


@router.post("/deliveries/{delivery_id}/retry", status_code=202, response_model=DeliveryOut)
def retry_delivery(delivery_id: DeliveryId, services: ServicesDep) -> Response:
    """Send the delivery again (whatever its state), as soon as a worker is free.

    409 while a worker holds it: an attempt may be on the wire, and a second one would send
    the message twice. Retry once that attempt is recorded.
    """
    return JSON(services.endpoints.retry_delivery(delivery_id).to_api(), status_code=202)
