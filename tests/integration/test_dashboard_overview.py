"""The overview's figures on each backend: counts, and activity by window (totals, success
rates, latency percentiles from the histogram), from rows written straight into the tables."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert

from hookhub.services import Services
from hookhub.store.database import Database
from hookhub.store.schema import (
    deliveries,
    delivery_attempts,
    emails,
    inbound_requests,
    messages,
)
from hookhub.web.stats import WINDOWS, ActivityCache, percentile, read_activity

MakeClient = Callable[[str], Any]


def _seed(services: Services, client: Any, now: float) -> None:
    endpoint = client.post(
        "/api/v1/webhooks", json={"url": "https://example.com/hook", "events": ["*"]}
    )
    assert endpoint.status_code == 201, endpoint.text
    hook = client.post("/api/v1/inbound-webhooks", json={"name": "Shop", "source": "stripe"})
    assert hook.status_code == 201, hook.text
    endpoint_id, hook_id = endpoint.json()["id"], hook.json()["id"]
    stamp = datetime.fromtimestamp(now - 60, UTC)
    with services.db.write() as conn:
        conn.execute(
            insert(messages),
            [{"id": "msg_a", "type": "contact.created", "payload": "{}", "created_at": stamp}],
        )
        conn.execute(
            insert(deliveries),
            [{"id": 1, "message_id": "msg_a", "endpoint_id": endpoint_id, "status": "succeeded",
              "attempt_count": 4, "created_at": now - 60, "updated_at": now - 60}],
        )
        # Three successes (8, 30, 30 ms), one 500 (600 ms), one two days old (outside a day).
        attempts = [(now - 50, 200, 8.0), (now - 40, 200, 30.0), (now - 30, 204, 30.0),
                    (now - 20, 500, 600.0), (now - 2 * 86_400, 200, 1.0)]
        conn.execute(
            insert(delivery_attempts),
            [{"delivery_id": 1, "attempted_at": t, "status_code": code, "duration_ms": ms}
             for t, code, ms in attempts],
        )
        requests = [("processed", now - 100, now - 99.99), ("failed", now - 90, now - 89.9),
                    ("received", now - 5, None)]
        conn.execute(
            insert(inbound_requests),
            [{"webhook_id": hook_id, "received_at": at, "status": status, "http_status": 202,
              "headers": "[]", "processed_at": done} for status, at, done in requests],
        )
        conn.execute(
            insert(emails),
            [{"message_id": f"m{i}@example.com", "kind": "transactional",
              "to_email": "a@example.com", "sender": "{}", "status": status,
              "created_at": stamp, "sent_at": stamp if status != "queued" else None,
              "updated_at": now} for i, status in enumerate(("sent", "bounced", "queued"))],
        )


def test_activity_by_window(services: Services, client: Any) -> None:
    now = time.time()
    _seed(services, client, now)
    day = read_activity(services.db, WINDOWS["day"], now)
    sent = day.series["deliveries"]
    assert (sent.total, sent.ok, sent.failed) == (4, 3, 1)
    assert sent.success_rate == 0.75
    assert sent.p50_ms == 50  # the 30 ms attempts sit in the 25-50 ms bucket
    assert sent.p95_ms == 1000  # the 600 ms one in 500-1000
    assert sum(p.total for p in sent.points) == 4
    assert len(sent.points) == WINDOWS["day"].buckets
    week = read_activity(services.db, WINDOWS["week"], now)
    assert week.series["deliveries"].total == 5
    received = day.series["inbound"]
    assert (received.total, received.ok, received.failed) == (3, 1, 1)
    assert received.success_rate == 0.5
    assert received.p50_ms is not None
    mail = day.series["emails"]
    assert (mail.total, mail.ok, mail.failed) == (3, 1, 1)
    hour = read_activity(services.db, WINDOWS["hour"], now)
    assert hour.series["deliveries"].total == 4


def test_percentile_reads_the_bucket_edge() -> None:
    assert percentile([0] * 14, 0.5) is None
    histogram = [0] * 14
    histogram[1] = 50  # 5-10 ms
    histogram[5] = 50  # 100-250 ms
    assert percentile(histogram, 0.5) == 10
    assert percentile(histogram, 0.95) == 250
    histogram[13] = 1000  # beyond the last edge
    assert percentile(histogram, 0.99) == 60_000


def test_overview_page_shows_counts_and_activity(
    dashboard_client: MakeClient, services: Services, client: Any
) -> None:
    _seed(services, client, time.time())
    viewer = dashboard_client("viewer")
    page = viewer.get("/?window=day")
    assert page.status_code == 200
    assert "Outbound endpoints" in page.text
    activity = viewer.get("/overview/activity?window=day")
    assert activity.status_code == 200
    assert "<svg" in activity.text
    assert "75.0%" in activity.text  # deliveries' success rate
    assert "Delivery attempts" in activity.text
    # Once counted, the page itself carries the figures (no second round trip).
    assert "75.0%" in viewer.get("/?window=day").text
    counts = viewer.get("/overview/counts", headers={"HX-Request": "true"})
    assert counts.status_code == 200
    assert 'id="overview-counts"' in counts.text
    assert "<html" not in counts.text


async def test_the_cache_answers_stale_figures_at_once_and_refreshes_behind(
    services: Services,
) -> None:
    clock = [time.time()]
    cache = ActivityCache(services.db, clock=lambda: clock[0])
    hour = WINDOWS["hour"]
    assert cache.peek(hour) is None  # nothing yet, and nothing started behind the page
    assert cache.pending(hour) is None
    first = await cache.get(hour)
    assert first.computed_at == clock[0]
    assert await cache.get(hour) is first  # fresh: no new read
    clock[0] += hour.fresh + 1
    stale = await cache.get(hour)
    assert stale is first  # stale, answered at once, while one refresh runs ...
    refresh = cache.pending(hour)
    assert refresh is not None
    assert cache.peek(hour) is first
    assert cache.pending(hour) is refresh  # ... and only one
    await refresh
    refreshed = await cache.get(hour)  # it lands for the next request
    assert refreshed is not first
    assert refreshed.computed_at == clock[0]
    assert cache.pending(hour) is None


def test_activity_says_so_when_the_database_does_not_answer(
    dashboard_client: MakeClient,
) -> None:
    viewer = dashboard_client("viewer")
    # Figures counted from a database nobody listens for (connection refused).
    unreachable = Database("postgresql://postgres@127.0.0.1:1/none")
    viewer.app.state.activity_cache = ActivityCache(unreachable)
    try:
        part = viewer.get("/overview/activity?window=week")
        assert part.status_code == 200
        assert "The database did not answer" in part.text
        assert 'hx-trigger="every 15s"' in part.text  # and it tries again
    finally:
        unreachable.dispose()
