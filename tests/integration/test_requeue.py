"""Retry and recover, on each backend: what they send again, and to whom.

A requeued delivery gets its whole retry schedule again (then one more ``delivery.exhausted``),
and recovering one endpoint never hands it the test sends made to another.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.delivery import (
    Script,
    api_client,
    create_contact,
    eventually,
    running_worker,
    tuned_services,
)
from tests.support.receiver import running_receiver

API = "/api/v1"


def _create(client: Any, **fields: Any) -> dict[str, Any]:
    body = {"url": "https://hooks.example.com/in", "events": ["contact.created"], **fields}
    response = client.post(f"{API}/webhooks", json=body)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_recover_never_backfills_another_endpoints_test_send(db_url: str) -> None:
    with tuned_services(db_url) as services, api_client(services) as client:
        since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        tested = _create(client, url="https://tested.example.com/in")
        other = _create(client, url="https://other.example.com/in", events=["*"])
        sent = client.post(
            f"{API}/webhooks/{tested['id']}/test", json={"event_type": "contact.created"}
        )
        assert sent.status_code == 202, sent.text
        create_contact(services, "real@example.com")  # a real message both already have

        recovered = client.post(f"{API}/webhooks/{other['id']}/recover", json={"since": since})
        assert recovered.status_code == 202, recovered.text
        assert recovered.json() == {"requeued": 0, "backfilled": 0}
        others = client.get(f"{API}/webhooks/{other['id']}/deliveries").json()["data"]
        assert sent.json()["message_id"] not in {d["message_id"] for d in others}
        assert len(others) == 1

        # The endpoint the test was sent to keeps its one delivery of it, not a second.
        again = client.post(f"{API}/webhooks/{tested['id']}/recover", json={"since": since})
        assert again.json() == {"requeued": 0, "backfilled": 0}


@pytest.mark.parametrize("how", ["retry", "recover"])
async def test_a_requeued_delivery_gets_its_whole_schedule_again(db_url: str, how: str) -> None:
    """Two attempts (the schedule has one retry), exhausted; requeued: two more attempts, and
    only then a second delivery.exhausted."""
    since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    with (
        tuned_services(
            db_url,
            retry_schedule="0.1",
            retry_jitter=0,
            retry_min_backoff=0.1,
            poll_interval=0.1,
        ) as services,
        api_client(services) as client,
    ):
        async with running_receiver(Script(then=500)) as receiver, running_worker(services):
            webhook = _create(client, url=receiver.url)
            create_contact(services, "again@example.com")

            def delivery() -> dict[str, Any]:
                [item] = client.get(f"{API}/webhooks/{webhook['id']}/deliveries").json()["data"]
                answer: dict[str, Any] = client.get(f"{API}/deliveries/{item['id']}").json()
                return answer

            def exhausted_after(attempts: int) -> bool:
                state = delivery()
                return state["status"] == "exhausted" and len(state["attempts"]) == attempts

            await eventually(lambda: exhausted_after(2))
            assert delivery()["attempt_count"] == 2
            if how == "retry":
                path, body = f"/deliveries/{delivery()['id']}/retry", None
            else:
                path, body = f"/webhooks/{webhook['id']}/recover", {"since": since}
            answer = await asyncio.to_thread(client.post, API + path, json=body)
            assert answer.status_code == 202, answer.text
            await eventually(lambda: exhausted_after(4))
        state = delivery()
        assert [a["status_code"] for a in state["attempts"]] == [500] * 4
        assert state["attempt_count"] == 2
        assert len(receiver.requests) == 4
        exhausted = client.get(
            f"{API}/messages", params={"event_type": "delivery.exhausted"}
        ).json()["data"]
        assert [m["payload"]["data"]["attempts"] for m in exhausted] == [2, 2]
        assert {m["payload"]["data"]["delivery_id"] for m in exhausted} == {state["id"]}
