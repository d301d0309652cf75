"""What the dashboard's webhook pages read beyond the API: a draft rule set's preview, the
request log by time, and the newest requests' and deliveries' statuses. Both backends.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

import pytest

from hookhub.errors import ValidationFailed
from hookhub.services import Services
from hookhub.store.dashboard_hooks import (
    ORDER_SLACK,
    RECENT,
    recent_delivery_statuses,
    recent_request_statuses,
    request_page,
)
from hookhub.store.inbound import InboundRequestStore, LogEntry
from tests.support.inbound import NOTHING, create_hook, fixture, raw_client, side_effects

STRIPE_EVENT = fixture("stripe_customer_created")


def _send(client: Any, hook: Any, body: bytes) -> None:
    with raw_client(client) as sender:
        answer = sender.post(hook.path, content=body, headers=hook.sign(body))
    assert answer.status_code == 202, answer.text


def test_a_draft_rule_set_is_previewed_instead_of_the_saved_one(
    client: Any, services: Services
) -> None:
    hook = create_hook(client, "stripe", secret="whsec_demo_secret")
    saved = services.inbound.get(hook.id).rules
    headers = {"content-type": "application/json"}

    draft = [{"name": "broken", "contact": {"email": "data.object.nowhere"}}]
    answer = services.inbound.preview(hook.id, STRIPE_EVENT, headers, rules=draft)
    assert answer["error"]["rule"] == "broken"
    assert answer["error"]["expression"] == "data.object.nowhere"

    # The saved rules are untouched and still what a preview without a draft runs.
    assert services.inbound.get(hook.id).rules == saved
    plain = services.inbound.preview(hook.id, STRIPE_EVENT, headers)
    assert plain["error"] is None
    assert plain["matched"][0]["rule"] == "customer created"

    fixed = [{"name": "fixed", "contact": {"email": "data.object.email"}}]
    answer = services.inbound.preview(hook.id, STRIPE_EVENT, headers, rules=fixed)
    assert answer["error"] is None
    assert answer["matched"][0]["contact"]["email"] == "jenny.rosen@example.com"
    assert answer["actions"][0]["contact"] == "created"
    assert side_effects(services) == NOTHING

    with pytest.raises(ValidationFailed) as refused:
        services.inbound.preview(hook.id, STRIPE_EVENT, headers, rules=[{"when": "a..b"}])
    assert "rules[0].when" in refused.value.message


def test_request_page_filters_by_status_and_time(client: Any, services: Services) -> None:
    hook = create_hook(client, "stripe", secret="whsec_demo_secret")
    for number in range(3):
        event = json.loads(STRIPE_EVENT)
        event["id"] = f"evt_{number}"
        _send(client, hook, json.dumps(event).encode())
    services.inbound.process_backlog()

    with services.db.read() as conn:
        everything = request_page(
            conn, hook.id, status=None, since=None, until=None, before_id=None, limit=50
        )
        assert [r.id for r in everything] == sorted((r.id for r in everything), reverse=True)
        assert len(everything) == 3
        assert all(r.body_size > 0 for r in everything)
        newest = everything[0]
        later = request_page(
            conn,
            hook.id,
            status="processed",
            since=newest.received_at,
            until=None,
            before_id=None,
            limit=50,
        )
        assert newest.id in [r.id for r in later]
        assert (
            request_page(
                conn,
                hook.id,
                status=None,
                since=None,
                until=time.time() - 3600,
                before_id=None,
                limit=50,
            )
            == []
        )
        assert (
            request_page(
                conn, hook.id, status="failed", since=None, until=None, before_id=None, limit=50
            )
            == []
        )
        older = request_page(
            conn, hook.id, status=None, since=None, until=None, before_id=newest.id, limit=1
        )
        assert [r.id for r in older] == [everything[1].id]

        recent = recent_request_statuses(conn, [hook.id, hook.id + 100])
    assert recent[hook.id].counts == {"processed": 3}
    assert recent[hook.id].last_at == pytest.approx(newest.received_at)
    assert recent[hook.id + 100].total == 0
    assert recent[hook.id + 100].share("failed") is None


def test_recent_delivery_statuses_count_the_newest_only(client: Any, services: Services) -> None:
    endpoint = services.endpoints.create({"url": "http://127.0.0.1:9/hook", "events": ["*"]})
    for _ in range(RECENT + 5):
        services.endpoints.send_test(endpoint.id, "contact.created")
    with services.db.read() as conn:
        recent = recent_delivery_statuses(conn, [endpoint.id])
    assert recent[endpoint.id].counts == {"pending": RECENT}
    assert recent[endpoint.id].share("failed", "exhausted") == 0.0


def test_time_windows_match_a_full_scan_of_an_interleaved_log(
    client: Any, services: Services
) -> None:
    """Two webhooks' requests interleaved, received_at rising with the id but jittered by up
    to a few seconds (a commit's latency): every window answers what scanning the log would."""
    mine = create_hook(client, "stripe", secret="whsec_demo_secret")
    other = create_hook(client, "stripe", secret="whsec_demo_secret")
    rng = random.Random(15)
    start = 1_800_000_000.0
    entries = []
    for number in range(600):
        webhook = mine if rng.random() < 0.3 else other
        jitter = rng.uniform(-3, 3) if number % 7 else 0.0
        entries.append(
            LogEntry(
                webhook_id=webhook.id,
                received_at=start + number * 10 + jitter,
                status=rng.choice(["processed", "failed"]),
                http_status=202,
                headers="[]",
                body=b"{}",
            )
        )
    with services.db.write() as conn:
        InboundRequestStore(conn).append(entries)
    assert ORDER_SLACK > 3

    with services.db.read() as conn:
        everything = request_page(
            conn, mine.id, status=None, since=None, until=None, before_id=None, limit=10_000
        )
        assert len(everything) > 100
        windows = [
            (None, start + 2000),
            (start + 2000, None),
            (start + 1500, start + 3500),
            (start - 100, start + 5),
            (start + 5990, None),
            (start + 9000, None),
            (None, start - 1),
            (start + 3000, start + 3000),
        ]
        for since, until in windows:
            for status in (None, "failed"):
                expected = [
                    r.id
                    for r in everything
                    if (since is None or r.received_at >= since)
                    and (until is None or r.received_at < until)
                    and (status is None or r.status == status)
                ]
                found = request_page(
                    conn,
                    mine.id,
                    status=status,
                    since=since,
                    until=until,
                    before_id=None,
                    limit=10_000,
                )
                assert [r.id for r in found] == expected, (since, until, status)
                first_page = request_page(
                    conn, mine.id, status=status, since=since, until=until, before_id=None, limit=7
                )
                assert [r.id for r in first_page] == expected[:7]
