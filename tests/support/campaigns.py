"""Helpers for campaign tests: lists and contacts through the API, campaigns' emails as stored,
and the campaign loop driven step by step."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select

from hookhub.email.campaign_loop import CampaignLoop
from hookhub.services import Services
from hookhub.store.contacts import ContactStore
from hookhub.store.schema_email import emails

C = "/api/v1/campaigns"


def make_list(client: Any, name: str) -> int:
    response = client.post("/api/v1/lists", json={"name": name})
    assert response.status_code == 201, response.text
    list_id: int = response.json()["id"]
    return list_id


def make_contact(client: Any, email: str, list_ids: Sequence[int] = (), **fields: Any) -> int:
    body = {"email": email, "list_ids": list(list_ids), **fields}
    response = client.post("/api/v1/contacts", json=body)
    assert response.status_code == 201, response.text
    contact_id: int = response.json()["id"]
    return contact_id


def block(services: Services, contact_id: int, reason: str = "hard_bounce") -> None:
    with services.db.write() as conn:
        ContactStore(conn).set_email_blocked(contact_id, {"reason": reason, "at": "2026-12-03"})


def make_campaign(client: Any, list_ids: Sequence[int], **fields: Any) -> dict[str, Any]:
    body = {
        "name": "December news",
        "subject": "News for {{ contact.FIRSTNAME }}",
        "html": "<p>Hello {{ contact.email }}, {{ params.offer }}</p>",
        "list_ids": list(list_ids),
        "params": {"offer": "20% off"},
        **fields,
    }
    response = client.post(C, json=body)
    assert response.status_code == 201, response.text
    campaign: dict[str, Any] = response.json()
    return campaign


def send(client: Any, campaign_id: int, **body: Any) -> dict[str, Any]:
    response = client.post(f"{C}/{campaign_id}/send", json=body)
    assert response.status_code == 200, response.text
    campaign: dict[str, Any] = response.json()
    return campaign


def drain(loop: CampaignLoop, most: int = 10_000) -> int:
    """Run the loop's steps until it has nothing left to do; how many it ran."""
    for done in range(most):
        if not loop.step():
            return done
    raise AssertionError("the campaign loop never ran out of work")


def campaign_emails(services: Services, campaign_id: int) -> list[Any]:
    """The campaign's email rows (without their bytes), by id."""
    columns = [c for c in emails.c if c.name != "raw"]
    with services.db.read() as conn:
        query = select(*columns).where(emails.c.campaign_id == campaign_id).order_by(emails.c.id)
        return list(conn.execute(query))


def loop_at(services: Services, moment: datetime | None = None, **options: Any) -> CampaignLoop:
    """A campaign loop (its own lease owner), whose clock says ``moment`` if given."""
    if moment is not None:
        options["clock"] = lambda: moment
    return CampaignLoop(services.db, services.settings, **options)
