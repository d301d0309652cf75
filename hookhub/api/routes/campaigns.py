"""/api/v1/campaigns: campaigns to lists, their sending, test sends and live stats."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.responses import Response

from hookhub.api.campaign_schemas import (
    CampaignCreate,
    CampaignOut,
    CampaignPatch,
    CampaignSend,
    CampaignTest,
    TestEmailsOut,
)
from hookhub.api.deps import DEFAULT_PAGE, Cursor, Limit, ServicesDep
from hookhub.api.responses import JSON
from hookhub.api.schemas import MAX_ID, PageOut
from hookhub.core.pagination import decode_cursor, encode_cursor
from hookhub.email.campaigns import CampaignService
from hookhub.services import Services

router = APIRouter(prefix="/campaigns", tags=["campaigns"])
CampaignId = Annotated[int, Path(ge=1, le=MAX_ID)]


def _service(services: Services) -> CampaignService:
    return CampaignService(services.db, services.outbox, services.settings)


@router.post("", status_code=201, response_model=CampaignOut)
def create_campaign(body: CampaignCreate, services: ServicesDep) -> Response:
    campaign = _service(services).create(body.model_dump(mode="python"))
    return JSON(campaign.to_api(), status_code=201)


@router.get("", response_model=PageOut[CampaignOut])
def list_campaigns(
    services: ServicesDep, limit: Limit = DEFAULT_PAGE, cursor: Cursor = None
) -> Response:
    items = _service(services).page(before_id=decode_cursor(cursor), limit=limit)
    next_cursor = encode_cursor(items[-1].id) if len(items) == limit else None
    return JSON({"data": [c.to_api() for c in items], "next_cursor": next_cursor})


@router.get("/{campaign_id}", response_model=CampaignOut)
def get_campaign(campaign_id: CampaignId, services: ServicesDep) -> Response:
    return JSON(_service(services).get(campaign_id).to_api())


@router.patch("/{campaign_id}", response_model=CampaignOut)
def patch_campaign(campaign_id: CampaignId, body: CampaignPatch, services: ServicesDep) -> Response:
    changes = body.model_dump(mode="python", exclude_unset=True)
    return JSON(_service(services).update(campaign_id, changes).to_api())


@router.delete("/{campaign_id}", status_code=204)
def delete_campaign(campaign_id: CampaignId, services: ServicesDep) -> Response:
    _service(services).delete(campaign_id)
    return Response(status_code=204)


@router.post("/{campaign_id}/send", response_model=CampaignOut)
def send_campaign(
    campaign_id: CampaignId, services: ServicesDep, body: CampaignSend | None = None
) -> Response:
    scheduled_at = body.scheduled_at if body is not None else None
    return JSON(_service(services).send(campaign_id, scheduled_at).to_api())


@router.post("/{campaign_id}/pause", response_model=CampaignOut)
def pause_campaign(campaign_id: CampaignId, services: ServicesDep) -> Response:
    return JSON(_service(services).pause(campaign_id).to_api())


@router.post("/{campaign_id}/resume", response_model=CampaignOut)
def resume_campaign(campaign_id: CampaignId, services: ServicesDep) -> Response:
    return JSON(_service(services).resume(campaign_id).to_api())


@router.post("/{campaign_id}/cancel", response_model=CampaignOut)
def cancel_campaign(campaign_id: CampaignId, services: ServicesDep) -> Response:
    return JSON(_service(services).cancel(campaign_id).to_api())


@router.post("/{campaign_id}/test", status_code=202, response_model=TestEmailsOut)
def test_campaign(campaign_id: CampaignId, body: CampaignTest, services: ServicesDep) -> Response:
    emails = _service(services).test(campaign_id, body.emails)
    return JSON({"data": [e.to_summary() for e in emails]}, status_code=202)
