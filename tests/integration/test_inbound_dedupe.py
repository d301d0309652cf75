"""Providers retry, and sometimes send one event several times at once: it acts exactly once.

The event's id is claimed when the request is logged (INSERT ... ON CONFLICT DO NOTHING), so of
concurrent copies exactly one is acknowledged with 202 and the others with 200 "duplicate",
whether they arrive in one group commit, in consecutive ones, or at two processes.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hookhub.api.app import create_app
from hookhub.services import Services, build_services
from tests.conftest import make_settings
from tests.support.inbound import (
    Hook,
    create_hook,
    fixture,
    log_statuses,
    messages_of,
    raw_client,
    side_effects,
)

STRIPE_EVENT = fixture("stripe_customer_created")


@pytest.fixture
def sender(client: Any) -> Iterator[Any]:
    with raw_client(client) as raw:
        yield raw


def _all_at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` in threads released together; their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait(timeout=10)
        results[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def _post(sender: Any, hook: Hook) -> Callable[[Any], Any]:
    """A call sending the fixture event, signed once: three copies of the same delivery."""
    headers = hook.sign(STRIPE_EVENT)
    return lambda: sender.post(hook.path, content=STRIPE_EVENT, headers=headers)


def _assert_acted_once(client: Any, services: Services, responses: list[Any]) -> None:
    answers = sorted((r.status_code, r.json()["status"]) for r in responses)
    assert answers == [(200, "duplicate"), (200, "duplicate"), (202, "queued")]
    assert len({r.json()["request_id"] for r in responses}) == 3, "each copy is logged"

    services.inbound.process_backlog()
    counts = side_effects(services)
    assert counts["contacts"] == 1
    assert counts["custom_events"] == 1
    assert Counter(m["type"] for m in messages_of(client)) == {
        "contact.created": 1,
        "event.tracked": 1,
    }
    assert sorted(log_statuses(services)) == ["duplicate", "duplicate", "processed"]


def test_three_concurrent_copies_act_once(client: Any, sender: Any, services: Services) -> None:
    hook = create_hook(client, "stripe")
    send = _post(sender, hook)
    responses = _all_at_once([send, send, send])
    _assert_acted_once(client, services, responses)

    # A retry long after the first was processed is still a duplicate.
    late = send()
    assert (late.status_code, late.json()["status"]) == (200, "duplicate")
    assert services.inbound.process_backlog() == 0
    assert side_effects(services)["contacts"] == 1


def test_copies_arriving_at_two_processes_act_once(
    client: Any, sender: Any, services: Services, db_url: str
) -> None:
    """A second app on its own connection pool stands in for a second ``hookhub api`` process."""
    hook = create_hook(client, "stripe")
    other_services = build_services(make_settings(db_url))
    try:
        with TestClient(create_app(other_services)) as other:
            send_here = _post(sender, hook)
            send_there = _post(other, hook)
            responses = _all_at_once([send_here, send_there, send_there])
    finally:
        other_services.close()
    _assert_acted_once(client, services, responses)


def test_the_same_event_id_at_two_webhooks_is_two_events(
    client: Any, sender: Any, services: Services
) -> None:
    """Dedupe is per webhook: two Stripe accounts may well send ids that collide."""
    first = create_hook(client, "stripe", name="shop one")
    second = create_hook(client, "stripe", name="shop two")
    assert _post(sender, first)().status_code == 202
    assert _post(sender, second)().status_code == 202
    assert services.inbound.process_backlog() == 2
    counts = side_effects(services)
    assert (counts["contacts"], counts["custom_events"]) == (1, 2)
