"""The ``webhook`` step end to end: a signed Standard Webhooks POST through the delivery
queue to a real receiver, from a hidden endpoint that ``/webhooks`` and fan-out never see."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import func, select

from hookhub.clock import FakeClock
from hookhub.store.endpoints import EndpointStore
from hookhub.store.schema import deliveries
from tests.support.automation_engine import Automations
from tests.support.delivery import (
    api_client,
    create_contact,
    running_worker,
    tuned_services,
    verify,
)
from tests.support.receiver import Received, running_receiver


async def test_a_webhook_step_posts_a_signed_request(db_url: str) -> None:
    with tuned_services(db_url) as services:
        async with running_receiver() as receiver:
            # Whole seconds: a datetime keeps microseconds, and enrolling goes through one.
            auto = Automations(services, FakeClock(float(int(time.time()))))
            with services.crm.transaction() as crm:
                list_id = crm.lists.create("customers", crm.now).id
            contact_id = create_contact(services, "ada@example.com", FIRSTNAME="Ada")
            with services.crm.transaction() as crm:
                crm.update_contact(crm.find_contact(contact_id), add_list_ids=[list_id])
            # Subscribed to everything, and to automation.webhook by name: neither gets it.
            watcher = services.endpoints.create({"url": receiver.url + "/all", "events": ["*"]})
            named = services.endpoints.create(
                {"url": receiver.url + "/named", "events": ["automation.webhook"]}
            )
            automation = auto.create(
                [
                    {
                        "id": "notify-crm",
                        "webhook": {
                            "url": receiver.url,
                            "include": ["attributes", "lists", "trigger"],
                        },
                    }
                ]
            )
            enrollment_id = auto.enroll(automation, contact_id, {"form": "lead"})
            assert await asyncio.to_thread(auto.engine.run_due) == 1

            with services.db.read() as conn:
                store = EndpointStore(conn)
                found = store.automation_endpoint(automation.id, "notify-crm")
                assert found is not None
                hidden = store.get(found[0])
                assert hidden is not None
                sent = conn.execute(
                    select(deliveries.c.endpoint_id, func.count())
                    .group_by(deliveries.c.endpoint_id)
                    .order_by(deliveries.c.endpoint_id)
                ).all()
            assert hidden.url == receiver.url
            assert hidden.secret.startswith("whsec_")
            # Only the hidden endpoint got a delivery of the step's message (the watcher's
            # are of automation.entered/exited, contact and list events).
            webhook_deliveries = [row for row in sent if row[0] == hidden.id]
            assert webhook_deliveries == [(hidden.id, 1)]
            assert all(row[0] in (hidden.id, watcher.id) for row in sent)

            async def first_post() -> Received:
                while True:
                    hook = [r for r in receiver.requests if r.path == "/hook"]
                    if hook:
                        return hook[0]
                    receiver.arrived.clear()
                    await receiver.arrived.wait()

            async with running_worker(services):
                posted = await asyncio.wait_for(first_post(), 20)
            payload = verify(hidden.secret, posted)
            assert payload["type"] == "automation.webhook"
            assert payload["data"] == {
                "contact_id": contact_id,
                "email": "ada@example.com",
                "automation_id": automation.id,
                "enrollment_id": enrollment_id,
                "step_id": "notify-crm",
                "attributes": {"FIRSTNAME": "Ada"},
                "list_ids": [list_id],
                "trigger": {"type": "manual", "data": {"form": "lead"}},
            }
            assert not [r for r in receiver.requests if r.path == "/named"]
            assert all(
                r.json()["type"] != "automation.webhook"
                for r in receiver.requests
                if r.path != "/hook"
            )

            with api_client(services) as client:
                listed = client.get("/api/v1/webhooks").json()["data"]
                assert sorted(e["id"] for e in listed) == sorted([watcher.id, named.id])
                assert client.get(f"/api/v1/webhooks/{hidden.id}").status_code == 404
                assert client.delete(f"/api/v1/webhooks/{hidden.id}").status_code == 404


def test_a_webhook_step_keeps_its_endpoint_and_follows_url_edits(db_url: str) -> None:
    with tuned_services(db_url) as services:
        auto = Automations(services, FakeClock())
        first = create_contact(services, "ada@example.com")
        second = create_contact(services, "bob@example.com")
        third = create_contact(services, "cy@example.com")
        steps = [{"id": "hook", "webhook": {"url": "https://one.example.com/h"}}]
        automation = auto.create(steps)
        auto.enroll(automation, first)
        auto.enroll(automation, second)
        assert auto.engine.run_due() == 2
        with services.db.read() as conn:
            before = EndpointStore(conn).automation_endpoint(automation.id, "hook")
        assert before is not None
        assert before[1] == "https://one.example.com/h"

        auto.edit_steps(
            automation, [{"id": "hook", "webhook": {"url": "https://two.example.com/h"}}]
        )
        auto.enroll(automation, third)
        assert auto.engine.run_due() == 1
        with services.db.read() as conn:
            store = EndpointStore(conn)
            after = store.automation_endpoint(automation.id, "hook")
            count = conn.execute(
                select(func.count()).where(deliveries.c.endpoint_id == before[0])
            ).scalar_one()
        assert after == (before[0], "https://two.example.com/h")
        assert count == 3
