"""Retention on each backend: what is older than its retention goes, in batches; what is newer,
and pending work however old, stays.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from hookhub.retention import PurgeCounts, RetentionLoop, RetentionService
from hookhub.services import Services
from hookhub.store.inbound import InboundWebhookStore
from hookhub.store.retention import RetentionStore, purge_lock
from tests.conftest import _truncate_postgres
from tests.support.delivery import api_client, eventually, tuned_services
from tests.support.inbound import create_hook, fixture, raw_client, requests_of
from tests.support.retention import age_requests, message_ids, row_counts, seed_message

API = "/api/v1"
HOUR = 3600.0


@pytest.fixture
def tuned(db_url: str) -> Iterator[tuple[Services, Any]]:
    # A batch of 2 rows, so every purge below takes several batches.
    with (
        tuned_services(
            db_url, retention_requests=HOUR, dedupe_retention=HOUR, retention_batch=2
        ) as services,
        api_client(services) as client,
    ):
        yield services, client


def _stripe_event(number: int) -> bytes:
    event = orjson.loads(fixture("stripe_customer_created"))
    event["id"] = f"evt_retention_{number}"
    return orjson.dumps(event)


def _send(sender: Any, hook: Any, number: int) -> Any:
    body = _stripe_event(number)
    return sender.post(hook.path, content=body, headers=hook.sign(body))


def test_old_requests_and_dedupe_keys_go_new_and_unprocessed_stay(
    tuned: tuple[Services, Any],
) -> None:
    services, client = tuned
    hook = create_hook(client, "stripe")
    with raw_client(client) as sender:
        old = [_send(sender, hook, n).json()["request_id"] for n in range(5)]
        services.inbound.process_backlog()
        unprocessed = _send(sender, hook, 5).json()["request_id"]  # left as "received"
        age_requests(services, [*old, unprocessed], days=1)
        recent = _send(sender, hook, 6).json()["request_id"]
        assert {r["status"] for r in requests_of(client, hook)} == {"processed", "received"}

        counts = RetentionService(services.db, services.settings).purge(messages=False)

        assert counts == PurgeCounts(requests=5, dedupe_keys=6)  # the unprocessed one's too
        assert [r["id"] for r in requests_of(client, hook)] == [recent, unprocessed]
        gone = client.get(f"{API}/inbound-webhooks/{hook.id}/requests/{old[0]}")
        assert gone.status_code == 404, gone.text
        # The forgotten event ids are events again; the remembered ones still duplicates.
        again = _send(sender, hook, 0)
        assert again.status_code == 202, again.text
        assert _send(sender, hook, 6).json()["status"] == "duplicate"
    assert RetentionService(services.db, services.settings).purge() == PurgeCounts()


def test_old_messages_go_with_their_deliveries_once_every_delivery_is_final(
    tuned: tuple[Services, Any],
) -> None:
    services, client = tuned
    everything = client.post(
        f"{API}/webhooks", json={"url": "https://a.example.com/in", "events": ["*"]}
    ).json()["id"]
    contacts_only = client.post(
        f"{API}/webhooks", json={"url": "https://b.example.com/in", "events": ["contact.created"]}
    ).json()["id"]
    both = (everything, contacts_only)
    delivered = seed_message(
        services, "contact.created", age_days=40, outcomes=dict.fromkeys(both, "succeeded")
    )
    exhausted = seed_message(
        services, "list.contact_added", age_days=35, outcomes={everything: "exhausted"}
    )
    unsubscribed = seed_message(services, "webhook.disabled", age_days=40)  # no deliveries
    half_done = seed_message(
        services,
        "contact.created",
        age_days=40,
        outcomes={everything: "succeeded", contacts_only: "failed"},
    )
    pending = seed_message(services, "event.tracked", age_days=50, outcomes={everything: "pending"})
    recent = seed_message(
        services, "contact.created", age_days=29, outcomes=dict.fromkeys(both, "succeeded")
    )
    old_deliveries = client.get(f"{API}/messages/{delivered}").json()["deliveries"]
    before = row_counts(services)
    service = RetentionService(services.db, services.settings)

    expected = PurgeCounts(messages=3, deliveries=3, attempts=3)
    assert service.purge(requests=False, dry_run=True) == expected
    assert row_counts(services) == before
    assert service.purge(requests=False) == expected

    assert message_ids(services) == {half_done, pending, recent}
    assert {m["id"] for m in client.get(f"{API}/messages").json()["data"]} == {
        half_done,
        pending,
        recent,
    }
    for gone in (delivered, exhausted, unsubscribed):
        assert client.get(f"{API}/messages/{gone}").status_code == 404
    for delivery in old_deliveries:
        assert client.get(f"{API}/deliveries/{delivery['id']}").status_code == 404
    kept = client.get(f"{API}/messages/{half_done}").json()["deliveries"]
    assert sorted(d["status"] for d in kept) == ["failed", "succeeded"]
    assert all(len(d["attempts"]) == 1 for d in kept)
    after = row_counts(services)
    assert after["deliveries"] == before["deliveries"] - 3
    assert after["delivery_attempts"] == before["delivery_attempts"] - 3


def test_retention_zero_keeps_forever(db_url: str) -> None:
    with tuned_services(db_url, retention_requests=0, retention_messages=0) as services:
        seed_message(services, "contact.created", age_days=3650)
        counts = RetentionService(services.db, services.settings).purge()
        assert counts == PurgeCounts()
        assert row_counts(services)["messages"] == 1


def test_a_purge_stops_between_batches_when_interrupted(tuned: tuple[Services, Any]) -> None:
    services, _client = tuned
    for _ in range(3):
        seed_message(services, "webhook.disabled", age_days=40)
    interrupt = threading.Event()
    interrupt.set()
    counts = RetentionService(services.db, services.settings).purge(interrupt=interrupt)
    assert counts == PurgeCounts()
    assert row_counts(services)["messages"] == 3


async def test_the_loop_purges_until_stopped(tuned: tuple[Services, Any]) -> None:
    services, _client = tuned
    seed_message(services, "webhook.disabled", age_days=40)
    loop = RetentionLoop(RetentionService(services.db, services.settings), interval=0.05)
    task = asyncio.create_task(loop.run())
    await eventually(lambda: loop.runs >= 1 and row_counts(services)["messages"] == 0)
    seed_message(services, "webhook.disabled", age_days=40)
    await eventually(lambda: row_counts(services)["messages"] == 0)
    loop.stop()
    await asyncio.wait_for(task, 10)


@pytest.mark.postgres
def test_one_process_purges_at_a_time_on_postgresql(postgres_database: str) -> None:
    db_url = postgres_database
    _truncate_postgres(db_url)
    with tuned_services(db_url) as services, tuned_services(db_url) as other:
        seed_message(services, "webhook.disabled", age_days=40)
        with purge_lock(other.db) as allowed:
            assert allowed
            busy = RetentionService(services.db, services.settings).purge()
        assert busy == PurgeCounts(skipped=True)
        assert row_counts(services)["messages"] == 1
        done = RetentionService(services.db, services.settings).purge()
        assert done == PurgeCounts(messages=1)


def test_a_batch_of_requests_ends_at_its_bodies_byte_budget(tuned: tuple[Services, Any]) -> None:
    """However many rows a batch may take, it stops once their bodies reach the budget, so one
    transaction never frees an unbounded amount of data."""
    services, client = tuned
    hook = create_hook(client, "stripe")
    with raw_client(client) as sender:
        sent = [_send(sender, hook, n).json()["request_id"] for n in range(3)]
    services.inbound.process_backlog()
    age_requests(services, sent, days=1)
    cutoff = time.time() - HOUR
    with services.db.read() as conn:
        store = RetentionStore(conn)
        one = store.request_batch(after_id=0, cutoff=cutoff, limit=100, max_bytes=1)
        everything = store.request_batch(after_id=0, cutoff=cutoff, limit=100)
    assert (one.expired, one.last_id, one.reached_recent) == ([sent[0]], sent[0], False)
    assert (everything.expired, everything.reached_recent) == (sent, True)
    counts = RetentionService(services.db, services.settings).purge()
    assert counts.requests == 3


def test_counts_of_unlogged_requests_go_with_the_request_log(
    tuned: tuple[Services, Any],
) -> None:
    services, client = tuned
    hook = create_hook(client, "stripe")
    now = time.time()
    with services.db.write() as conn:
        inbound = InboundWebhookStore(conn)
        for minutes_ago in (0, 30, 90, 120, 180):
            inbound.add_unlogged({(hook.id, "rate_limited"): 2}, now - minutes_ago * 60)
    with services.db.read() as conn:
        assert InboundWebhookStore(conn).unlogged(hook.id, now - 4 * HOUR) == {"rate_limited": 10}

    dry = RetentionService(services.db, services.settings).purge(messages=False, dry_run=True)
    assert dry.unlogged_counts == 3
    counts = RetentionService(services.db, services.settings).purge(messages=False)

    assert counts.unlogged_counts == 3  # the minutes older than the hour's retention
    with services.db.read() as conn:
        assert InboundWebhookStore(conn).unlogged(hook.id, now - 4 * HOUR) == {"rate_limited": 4}
