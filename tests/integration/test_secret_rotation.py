"""Rotating an endpoint's secret twice within the overlap: deliveries are signed with all three
secrets (Standard Webhooks ``v1,a v1,b v1,c``), each of which verifies, until each one's overlap
ends."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.delivery import (
    api_client,
    create_contact,
    running_worker,
    tuned_services,
    verify,
)
from tests.support.receiver import running_receiver

API = "/api/v1"


async def test_two_rotations_in_the_overlap_sign_with_all_three_secrets(db_url: str) -> None:
    with (
        tuned_services(db_url, poll_interval=0.1, secret_rotation_overlap=3600) as services,
        api_client(services) as client,
    ):
        async with running_receiver() as receiver, running_worker(services):
            made = client.post(
                f"{API}/webhooks", json={"url": receiver.url, "events": ["contact.created"]}
            ).json()
            path = f"{API}/webhooks/{made['id']}/rotate-secret"
            first = (await asyncio.to_thread(client.post, path)).json()
            second = (await asyncio.to_thread(client.post, path)).json()
            create_contact(services, "thrice@example.com")
            await receiver.wait_for(1)
        [request] = receiver.requests
        assert len(request.headers["webhook-signature"].split()) == 3
        for secret in (made["secret"], first["secret"], second["secret"]):
            assert verify(secret, request)["data"]["email"] == "thrice@example.com"
        shown: Any = client.get(f"{API}/webhooks/{made['id']}/secret").json()
        assert shown == {"secret": second["secret"]}
